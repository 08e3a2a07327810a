"""Shared pieces for the model builders: activation swap and named initialization schemes."""

from __future__ import annotations

from typing import Literal

from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
REINITS = ("kaiming", "xavier", "normal")  # schemes that re-initialize every conv and linear layer
INITS = ("default", *REINITS)  # LeNet-5 and the MLP: `default` keeps PyTorch's layer defaults
Activation = Literal[tuple(sorted(ACTIVATIONS))]
Init = Literal[INITS]


def make_activation(name: Activation) -> nn.Module:
    """A fresh activation module by name (`relu`, `tanh`, `sigmoid`)."""
    return ACTIVATIONS[name]()


def swap_activations(module: nn.Module, name: Activation) -> nn.Module:
    """Replace every `nn.ReLU` inside `module` by the activation `name` (in place; returns `module`)."""
    if name == "relu":
        return module
    for parent in module.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.ReLU):
                setattr(parent, child_name, make_activation(name))
    return module


def scaled(channels: int, width: float) -> int:
    """Channels scaled by the width multiplier, never below 1."""
    return max(1, int(round(channels * width)))


def initialize(module: nn.Module, scheme: Init, activation: Activation = "relu", std: float = 0.02) -> nn.Module:
    """Re-initialize conv and linear layers of `module` by a named scheme.

    - `default`: keep what the builder did (PyTorch's layer defaults for LeNet-5 and the MLP; ResNet-152
      and VGG-19 name their own schemes and call this only for the three below).
    - `kaiming`: He et al. 2015, normal, fan-in, gain for the activation.
    - `xavier`: Glorot & Bengio 2010, normal, gain for the activation.
    - `normal`: N(0, std^2).
    Biases are set to zero for every scheme but `default`. Normalization layers are left alone.
    The builders check `scheme` and `std` (their `init`, `init_std`) before calling this.
    """
    if scheme not in INITS:
        raise KeyError(scheme)  # an unchecked caller: never fall through to `normal`
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
