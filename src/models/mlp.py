"""A plain deep multilayer perceptron, for demonstrations that the gradient-health detectors work.

No normalization and no skip connections, on purpose: depth, activation and initialization
alone decide whether gradients vanish (deep sigmoid stacks, Glorot & Bengio 2010) or explode
(large initial weights), which is what `experiment=vanishing_demo` and `exploding_demo` show.

Dropout (`dropout=p`, set by `reg=dropout`): `nn.Dropout(p)` after each hidden layer's activation.
An MLP has no separate feature extractor: its hidden layers are both its trunk and its head, so
every `dropout_placement` (`head`, `trunk`, `both`) gives this same net, one module per hidden
layer (`both` does not put two in a row).
"""

from __future__ import annotations

from torch import Tensor, nn

from src.models.common import Activation, DropoutPlacement, Init, initialize, make_activation
from src.settings.signature import checked
from src.settings.types import ClassCount, Fraction, PositiveFloat, PositiveInt


class MLP(nn.Module):
    """Flatten -> `depth` x (Linear(width) -> activation [-> Dropout]) -> Linear(num_classes).

    `dropout_placement` is accepted for every builder's sake and changes nothing (module docstring)."""

    @checked("model")
    def __init__(
        self, in_features: PositiveInt, num_classes: ClassCount, depth: PositiveInt, width: PositiveInt,
        activation: Activation, dropout: Fraction = 0.0, dropout_placement: DropoutPlacement = "head",
    ) -> None:
        super().__init__()
        del dropout_placement  # the hidden layers are the trunk and the head alike
        layers: list[nn.Module] = [nn.Flatten()]
        features = in_features
        for _ in range(depth):
            layers += [nn.Linear(features, width), make_activation(activation)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))  # after each hidden layer, as LeNet-5's
            features = width
        layers.append(nn.Linear(features, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


@checked("model")
def mlp(
    in_channels: PositiveInt = 3,
    num_classes: ClassCount = 10,
    image_size: PositiveInt = 32,
    depth: PositiveInt = 8,
    width: PositiveInt = 64,
    activation: Activation = "relu",
    init: Init = "default",
    init_std: PositiveFloat = 0.02,
    dropout: Fraction = 0.0,
    dropout_placement: DropoutPlacement = "head",
) -> MLP:
    """MLP on flattened `in_channels x image_size x image_size` images; `init="default"` is PyTorch's."""
    net = MLP(in_channels * image_size * image_size, num_classes, depth, width, activation, dropout, dropout_placement)
    return initialize(net, init, activation, init_std)
