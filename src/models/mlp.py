"""A plain deep multilayer perceptron, for demonstrations that the gradient-health detectors work.

No normalization and no skip connections, on purpose: depth, activation and initialization
alone decide whether gradients vanish (deep sigmoid stacks, Glorot & Bengio 2010) or explode
(large initial weights), which is what `experiment=vanishing_demo` and `exploding_demo` show.
"""

from __future__ import annotations

from torch import Tensor, nn

from src.models.common import initialize, make_activation


class MLP(nn.Module):
    """Flatten -> `depth` x (Linear(width) -> activation [-> Dropout]) -> Linear(num_classes)."""

    def __init__(
        self, in_features: int, num_classes: int, depth: int, width: int, activation: str, dropout: float = 0.0
    ) -> None:
        super().__init__()
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


def mlp(
    in_channels: int = 3,
    num_classes: int = 10,
    image_size: int = 32,
    depth: int = 8,
    width: int = 64,
    activation: str = "relu",
    init: str = "default",
    init_std: float = 0.02,
    dropout: float = 0.0,
) -> MLP:
    """MLP on flattened `in_channels x image_size x image_size` images; `init="default"` is PyTorch's."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"model.depth={depth!r} is not allowed; it must be an integer >= 1")
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"model.width={width!r} is not allowed; it must be an integer >= 1")
    net = MLP(in_channels * image_size * image_size, num_classes, depth, width, activation, dropout)
    return initialize(net, init, activation, init_std)
