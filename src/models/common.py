"""Shared pieces for the model builders: activation swap and named initialization schemes."""

from __future__ import annotations

from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
INITS = ("default", "kaiming", "xavier", "normal")


def make_activation(name: str) -> nn.Module:
    """A fresh activation module by name (`relu`, `tanh`, `sigmoid`)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"model.activation={name!r} is not allowed; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def swap_activations(module: nn.Module, name: str) -> nn.Module:
    """Replace every `nn.ReLU` inside `module` by the activation `name` (in place; returns `module`)."""
    if name == "relu":
        return module
    make_activation(name)  # validate once, before touching the network
    for parent in module.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.ReLU):
                setattr(parent, child_name, make_activation(name))
    return module


def check_width(width: float) -> float:
    if not width > 0:
        raise ValueError(f"model.width={width!r} is not allowed; it must be a number > 0")
    return float(width)


def scaled(channels: int, width: float) -> int:
    """Channels scaled by the width multiplier, never below 1."""
    return max(1, int(round(channels * width)))


def initialize(module: nn.Module, scheme: str, activation: str = "relu", std: float = 0.02) -> nn.Module:
    """Re-initialize conv and linear layers of `module` by a named scheme.

    - `default`: keep what the builder did (torchvision's own init, or PyTorch's for LeNet-5).
    - `kaiming`: He et al. 2015, normal, fan-in, gain for the activation.
    - `xavier`: Glorot & Bengio 2010, normal, gain for the activation.
    - `normal`: N(0, std^2).
    Biases are set to zero for every scheme but `default`. Normalization layers are left alone.
    """
    if scheme not in INITS:
        raise ValueError(f"model.init={scheme!r} is not allowed; choose one of {list(INITS)}")
    if scheme == "normal" and not std > 0:
        raise ValueError(f"model.init_std={std!r} is not allowed; it must be a number > 0")
    if scheme == "default":
        return module
    gain_name = activation if activation in ("relu", "tanh", "sigmoid") else "relu"
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if scheme == "kaiming":
                nonlinearity = "relu" if gain_name == "relu" else gain_name
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity=nonlinearity)
            elif scheme == "xavier":
                nn.init.xavier_normal_(m.weight, gain=nn.init.calculate_gain(gain_name))
            else:
                nn.init.normal_(m.weight, mean=0.0, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module
