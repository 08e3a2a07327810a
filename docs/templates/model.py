"""TEMPLATE: a model. Copy to `src/models/<name>.py` and `model.yaml` to `conf/model/<name>.yaml`,
rename `tiny_cnn` / `TinyCNN`, and change the layers. docs/extending.md ("A model") is the contract.

A plain `nn.Module` plus a builder function whose keyword arguments are its whole contract: the
config validator reads their annotations (types from `src/settings/types.py`), so `model.width=0`
is refused by name before anything trains, and `@checked("model")` refuses the same from Python.
The builder must accept `in_channels`, `num_classes`, `image_size` (filled from the data config)
and `dropout` (set by `reg=dropout`; a builder without it makes the config refuse `reg=dropout`).
"""

from __future__ import annotations

from torch import Tensor, nn

from src.models.common import Activation, Init, initialize, make_activation
from src.settings.signature import checked
from src.settings.types import ClassCount, Fraction, PositiveFloat, PositiveInt


class TinyCNN(nn.Module):
    """Conv(width) -> act -> MaxPool(2) -> Conv(2·width) -> act -> global average -> [Dropout] -> Linear."""

    def __init__(self, in_channels: int, num_classes: int, width: int, activation: Activation,
                 dropout: float) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), make_activation(activation), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), make_activation(activation), nn.AdaptiveAvgPool2d(1),
        )
        head: list[nn.Module] = [nn.Flatten()]
        if dropout > 0:
            head.append(nn.Dropout(dropout))  # where `reg=dropout` acts: before the classifier
        self.classifier = nn.Sequential(*head, nn.Linear(2 * width, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


@checked("model")
def tiny_cnn(
    in_channels: PositiveInt = 3,
    num_classes: ClassCount = 10,
    image_size: PositiveInt = 32,  # any size >= 2 works (global average pooling); accepted for the contract
    width: PositiveInt = 16,
    activation: Activation = "relu",
    init: Init = "default",
    init_std: PositiveFloat = 0.02,
    dropout: Fraction = 0.0,
) -> TinyCNN:
    """A two-layer CNN; `init="default"` keeps PyTorch's layer defaults (`src/models/common.py`)."""
    net = TinyCNN(in_channels, num_classes, width, activation, dropout)
    return initialize(net, init, activation, init_std)
