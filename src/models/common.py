"""Shared pieces for the model builders: activation swap, named initialization schemes, dropout placement."""

from __future__ import annotations

from typing import Literal

from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
REINITS = ("kaiming", "xavier", "normal")  # schemes that re-initialize every conv and linear layer
INITS = ("default", *REINITS)  # LeNet-5 and the MLP: `default` keeps PyTorch's layer defaults
Activation = Literal[tuple(sorted(ACTIVATIONS))]
Init = Literal[INITS]
# Where a builder puts its dropout (`reg.dropout.placement`): `head` after the hidden FC layers of the
# classifier (the project's original placement), `trunk` inside the feature extractor (each builder's
# docstring says where), `both` in the two places.
DROPOUT_PLACEMENTS = ("head", "trunk", "both")
DropoutPlacement = Literal[DROPOUT_PLACEMENTS]


def dropout_in_head(p: float, placement: DropoutPlacement) -> bool:
    """Whether the classifier gets dropout modules (never at p = 0: no modules at all then)."""
    return p > 0 and placement in ("head", "both")


def dropout_in_trunk(p: float, placement: DropoutPlacement) -> bool:
    """Whether the feature extractor gets dropout modules (never at p = 0)."""
    return p > 0 and placement in ("trunk", "both")


def then_dropout2d(pool: nn.Module, p: float) -> nn.Sequential:
    """`pool` followed by spatial dropout (Tompson et al. 2015: whole feature maps zeroed at rate `p`,
    survivors scaled by 1/(1 − p)). Put in the pool's slot of a `Sequential`, it leaves the index, and so
    the module name, of every conv and linear layer as it was: the monitor's layer labels do not move."""
    return nn.Sequential(pool, nn.Dropout2d(p))


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
