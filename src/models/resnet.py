"""ResNet-152 (He et al. 2016) from torchvision's ResNet and Bottleneck, adapted for small studies.

Adaptations, each a keyword argument: input channels, class count, a small-image stem
(3x3 stride-1 first conv and no max-pool, the usual CIFAR choice), a width multiplier that
scales every channel count while keeping all 152 layers, activation swap, dropout before
`fc`, and a named init. At width 1 with the ImageNet stem and 3 input channels the parameter
count equals torchvision's `resnet152(num_classes=...)`.
"""

from __future__ import annotations

from torch import nn
from torchvision.models.resnet import Bottleneck, ResNet

from src.config.signature import checked
from src.config.types import ClassCount, Fraction, PositiveFloat, PositiveInt
from src.models.common import Activation, Init, initialize, scaled, swap_activations

RESNET152_LAYERS = [3, 8, 36, 3]


class WideScaledResNet(ResNet):
    """torchvision's ResNet with every stage's channel count multiplied by `width`."""

    def __init__(self, layers: list[int], num_classes: int, width: float) -> None:
        self._width = width
        self._first_stage = True
        super().__init__(Bottleneck, layers, num_classes=num_classes)

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):  # noqa: ANN001
        if self._first_stage:  # torchvision fixes the stem at 64 channels; scale it too
            self.inplanes = scaled(64, self._width)
            self._first_stage = False
        return super()._make_layer(block, scaled(planes, self._width), blocks, stride, dilate)


@checked("model")
def resnet152(
    in_channels: PositiveInt = 3,
    num_classes: ClassCount = 10,
    image_size: PositiveInt = 32,
    small_input: bool = True,
    width: PositiveFloat = 1.0,
    activation: Activation = "relu",
    init: Init = "default",
    init_std: PositiveFloat = 0.02,
    dropout: Fraction = 0.0,
) -> ResNet:
    """ResNet-152; `init="default"` is torchvision's (Kaiming normal, fan-out, for convs)."""
    del image_size  # global average pooling makes the network size-agnostic
    net = WideScaledResNet(RESNET152_LAYERS, num_classes, width)
    stem = scaled(64, width)
    if small_input:
        net.conv1 = nn.Conv2d(in_channels, stem, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    else:
        net.conv1 = nn.Conv2d(in_channels, stem, kernel_size=7, stride=2, padding=3, bias=False)
    net.bn1 = nn.BatchNorm2d(stem)  # torchvision's default init: weight 1, bias 0
    nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")  # torchvision's scheme
    if width != 1.0:  # torchvision sizes fc for 512 * 4 features
        net.fc = nn.Linear(scaled(512, width) * Bottleneck.expansion, num_classes)
    if dropout > 0:
        net.fc = nn.Sequential(nn.Dropout(dropout), net.fc)
    swap_activations(net, activation)
    return initialize(net, init, activation, init_std)
