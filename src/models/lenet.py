"""LeNet-5 (LeCun, Bottou, Bengio & Haffner 1998, "Gradient-based learning applied to document recognition").

Layers as in the paper: C1 6@5x5, S2 2x2 subsampling, C3 16@5x5, S4, C5 120 (5x5 conv on the
5x5 maps = fully connected), F6 84, output. Two simplifications, as in most modern
re-implementations and stated here so nobody mistakes them for the paper: C3 connects to all six
S2 maps (the paper's sparse connection table is not used) and the output is a linear layer
trained with cross-entropy instead of Euclidean RBF units. The paper's squashing function is a
scaled tanh; `activation="tanh"` uses plain tanh.

Dropout (`dropout=p`, set by `reg=dropout`), where `dropout_placement` says:
- `head` (default): `nn.Dropout(p)` after each hidden FC layer, C5 and F6 (2 modules, in `classifier`).
- `trunk`: spatial dropout `nn.Dropout2d(p)` after each conv block's pooling, S2 and S4 (2 modules): a
  whole feature map is zeroed at a time, since neighbouring pixels of one map are strongly correlated
  and unit dropout on them barely regularizes (Tompson et al. 2015). Each sits with its pooling in one
  `Sequential` slot (`features.2`, `features.5`), so C1, C3, C5 keep the names `features.0/3/6`.
- `both`: the four.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field
from torch import Tensor, nn

from src.models.common import (
    Activation,
    DropoutPlacement,
    Init,
    dropout_in_head,
    dropout_in_trunk,
    initialize,
    make_activation,
    then_dropout2d,
)
from src.settings.signature import checked
from src.settings.types import ClassCount, Fraction, PositiveFloat, PositiveInt

POOLS = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}
Pool = Literal[tuple(sorted(POOLS))]
ImageSize = Annotated[int, Field(ge=32, multiple_of=4)]  # 32 + 4k: two 5x5 convs and two 2x2 poolings fit


class LeNet5(nn.Module):
    @checked("model")
    def __init__(
        self,
        in_channels: PositiveInt = 1,
        num_classes: ClassCount = 10,
        image_size: ImageSize = 32,
        activation: Activation = "tanh",
        pool: Pool = "avg",
        dropout: Fraction = 0.0,
        dropout_placement: DropoutPlacement = "head",
    ) -> None:
        super().__init__()
        s4 = (image_size - 12) // 4  # spatial size after C1, S2, C3, S4: 5 for 32x32 input
        trunk = dropout_in_trunk(dropout, dropout_placement)

        def pooling() -> nn.Module:  # S2, S4; with trunk dropout, spatial dropout after each
            return then_dropout2d(POOLS[pool](2), dropout) if trunk else POOLS[pool](2)

        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5),  # C1
            make_activation(activation),
            pooling(),  # S2
            nn.Conv2d(6, 16, kernel_size=5),  # C3
            make_activation(activation),
            pooling(),  # S4
            nn.Conv2d(16, 120, kernel_size=s4),  # C5: 120 units, each sees all of S4
            make_activation(activation),
        )
        head = dropout_in_head(dropout, dropout_placement)
        hidden: list[nn.Module] = [nn.Flatten()]
        if head:
            hidden.append(nn.Dropout(dropout))  # after the hidden FC layer C5
        hidden += [nn.Linear(120, 84), make_activation(activation)]  # F6
        if head:
            hidden.append(nn.Dropout(dropout))  # after the hidden FC layer F6
        self.classifier = nn.Sequential(*hidden, nn.Linear(84, num_classes))  # output

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


@checked("model")
def lenet5(
    in_channels: PositiveInt = 1,
    num_classes: ClassCount = 10,
    image_size: ImageSize = 32,
    activation: Activation = "tanh",
    pool: Pool = "avg",
    init: Init = "default",
    init_std: PositiveFloat = 0.02,
    dropout: Fraction = 0.0,
    dropout_placement: DropoutPlacement = "head",
) -> LeNet5:
    """LeNet-5; `init="default"` keeps PyTorch's layer defaults (uniform, fan-in scaled)."""
    net = LeNet5(in_channels, num_classes, image_size, activation, pool, dropout, dropout_placement)
    return initialize(net, init, activation, init_std)
