"""ResNet-152 (He et al. 2016) from torchvision's ResNet and Bottleneck, adapted for small studies.

Adaptations, each a keyword argument: input channels, class count, a small-image stem
(3x3 stride-1 first conv and no max-pool, the usual CIFAR choice), a width multiplier that
scales every channel count while keeping all 152 layers, activation swap, dropout (below), a
named init, and three knobs for signal-propagation studies:

- `norm`: `batch` (torchvision's BatchNorm2d after every conv) or `none` (every norm layer is
  `nn.Identity`; the convs keep torchvision's `bias=False`).
- `residual`: `False` removes every shortcut, identity and projection alike: the plain
  counterpart of He et al. 2016 (Sec. 4.1, "plain networks"), same conv layers in the same
  order, spatial downsampling kept in the stride-2 3x3 convs (torchvision's V1.5 placement).
- `zero_init_residual`: the last layer of each residual branch starts at zero, so every block
  starts as the identity (Goyal et al. 2017; torchvision's knob of that name, which zeroes the
  last BatchNorm's scale γ). With `norm="none"` there is no BatchNorm, so the last conv of each
  branch is zeroed instead: Fixup's rule 2 (Zhang, Dauphin & Ma 2019), without its rescaling of the
  other branch layers and without its scalar biases.

Why the last knob matters without normalization: under torchvision's init (Kaiming normal,
fan-out, He et al. 2015) each bottleneck branch roughly preserves the variance of its input, so
`x + F(x)` multiplies it by 1.6-2.4 at each of the 50 blocks: block outputs grow from RMS 0.07 to
2e7 at width 1 (`docs/models_and_data.md`). Zeroing the branches makes the net start shallow.

Dropout (`dropout=p`, set by `reg=dropout`), where `dropout_placement` says:
- `head` (default): one `nn.Dropout(p)` before `fc` (`fc` becomes `Sequential(Dropout, Linear)`).
- `trunk`: spatial dropout `nn.Dropout2d(p)` inside each of the 50 bottleneck branches, between the 3x3
  conv and the last 1x1 conv: relu(bn2(conv2(·))) → Dropout2d → conv3 → bn3, then the add. This is
  the wide-ResNet practice, dropout between the convolutions of a residual block, after the ReLU
  (Zagoruyko & Komodakis 2016, Sec. 2.4). Not before the residual add: there it would act on the
  branch's output, which `zero_init_residual` makes exactly 0 at the start (dropout would do nothing
  until the branch grew), and its 1/(1 − p) rescaling would enter the residual stream directly at
  each of the 50 blocks; before conv3 the branch's own last conv and norm stand between the dropped
  maps and the sum. The shortcut is never dropped. Each module is the block's `dropout` attribute
  (`layer1.0.dropout`), registered after the block's own layers: conv and linear names, and the
  order the forward pass calls them (torchvision's), are those of the net without dropout.
- `both`: the 51.

At width 1 with the ImageNet stem, 3 input channels and `norm="batch"`, the parameter count equals
torchvision's `resnet152(num_classes=...)`; `residual=False` has that count minus the four
projection shortcuts (1x1 conv + norm) it no longer needs.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn
from torchvision.models.resnet import Bottleneck, ResNet

from src.models.common import (
    REINITS,
    Activation,
    DropoutPlacement,
    dropout_in_head,
    dropout_in_trunk,
    initialize,
    scaled,
    swap_activations,
)
from src.settings import ConfigError
from src.settings.signature import checked
from src.settings.types import ClassCount, Fraction, PositiveFloat, PositiveInt

RESNET152_LAYERS = [3, 8, 36, 3]
NORMS: dict[str, type[nn.Module]] = {"batch": nn.BatchNorm2d, "none": nn.Identity}  # Identity ignores its args
Norm = Literal[tuple(NORMS)]
ResNetInit = Literal[("torchvision", *REINITS)]


class PlainBottleneck(Bottleneck):
    """torchvision's Bottleneck without its shortcut: relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x))))))))).

    Shapes need no projection: conv3 sets the output channels and conv2's stride the spatial size.
    """

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003 - torchvision's own signature
        super().__init__(*args, **kwargs)
        self.downsample = None  # the projection shortcut goes with the shortcut

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)))


class DropoutBottleneck(Bottleneck):
    """torchvision's Bottleneck with `dropout` between the branch's 3x3 conv and its last 1x1 conv:
    relu(bn3(conv3(dropout(relu(bn2(conv2(relu(bn1(conv1(x))))))))) + shortcut(x)). Layers and call order
    as torchvision's; `dropout` is an `nn.Identity` until `resnet152` sets it (`set_branch_dropout`)."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003 - torchvision's own signature
        super().__init__(*args, **kwargs)
        self.dropout: nn.Module = nn.Identity()

    def branch(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(self.dropout(out)))

    def forward(self, x: Tensor) -> Tensor:
        out = self.branch(x)
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class PlainDropoutBottleneck(DropoutBottleneck, PlainBottleneck):
    """`PlainBottleneck` (no shortcut) with `DropoutBottleneck`'s branch dropout."""

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.branch(x))


def set_branch_dropout(net: nn.Module, p: float) -> None:
    """`nn.Dropout2d(p)` in every `DropoutBottleneck` of `net` (see the module docstring for why there)."""
    for block in net.modules():
        if isinstance(block, DropoutBottleneck):
            block.dropout = nn.Dropout2d(p)


class WideScaledResNet(ResNet):
    """torchvision's ResNet with every stage's channel count multiplied by `width`.

    The one place that relies on torchvision's private `_make_layer` (tested in `tests/test_models.py`).
    """

    def __init__(self, layers: list[int], num_classes: int, width: float, block: type[Bottleneck] = Bottleneck,
                 norm_layer: type[nn.Module] = nn.BatchNorm2d) -> None:
        self._width = width
        self._first_stage = True
        super().__init__(block, layers, num_classes=num_classes, norm_layer=norm_layer)

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):  # noqa: ANN001
        if self._first_stage:  # torchvision fixes the stem at 64 channels; scale it too
            self.inplanes = scaled(64, self._width)
            self._first_stage = False
        return super()._make_layer(block, scaled(planes, self._width), blocks, stride, dilate)


def zero_last_layer_of_each_branch(net: nn.Module) -> None:
    """Every bottleneck starts as its shortcut: γ of bn3 = 0 when it is a BatchNorm (Goyal et al. 2017),
    else conv3's weight = 0 (Fixup's rule 2, Zhang et al. 2019)."""
    for block in net.modules():
        if isinstance(block, Bottleneck):
            last = block.bn3 if isinstance(block.bn3, nn.BatchNorm2d) else block.conv3
            nn.init.zeros_(last.weight)


def knob_conflicts(residual: bool, zero_init_residual: bool) -> list[str]:
    """Settings of `resnet152` that are each allowed but not together, one line each (the builder refuses
    them; `src/config/checks.py` asks the same question of a config before anything runs)."""
    if zero_init_residual and not residual:
        return ["model.zero_init_residual=true is not allowed together with model.residual=false; without a "
                "shortcut a zeroed branch zeroes the block's output (set one of them back)"]
    return []


@checked("model")
def resnet152(
    in_channels: PositiveInt = 3,
    num_classes: ClassCount = 10,
    image_size: PositiveInt = 32,
    small_input: bool = True,
    width: PositiveFloat = 1.0,
    norm: Norm = "batch",
    residual: bool = True,
    zero_init_residual: bool = False,
    activation: Activation = "relu",
    init: ResNetInit = "torchvision",
    init_std: PositiveFloat = 0.02,
    dropout: Fraction = 0.0,
    dropout_placement: DropoutPlacement = "head",
) -> ResNet:
    """ResNet-152; `init="torchvision"` is torchvision's (Kaiming normal, fan-out, for convs; norm γ=1, β=0;
    `fc` PyTorch's default). `kaiming`, `xavier`, `normal` re-initialize every conv and linear layer."""
    del image_size  # global average pooling makes the network size-agnostic
    conflicts = knob_conflicts(residual, zero_init_residual)
    if conflicts:
        raise ConfigError("\n".join(conflicts))
    trunk = dropout_in_trunk(dropout, dropout_placement)
    if trunk:
        block = DropoutBottleneck if residual else PlainDropoutBottleneck
    else:
        block = Bottleneck if residual else PlainBottleneck
    net = WideScaledResNet(RESNET152_LAYERS, num_classes, width, block, NORMS[norm])
    if trunk:
        set_branch_dropout(net, dropout)
    stem = scaled(64, width)
    if small_input:
        net.conv1 = nn.Conv2d(in_channels, stem, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    else:
        net.conv1 = nn.Conv2d(in_channels, stem, kernel_size=7, stride=2, padding=3, bias=False)
    net.bn1 = NORMS[norm](stem)  # a fresh BatchNorm has torchvision's init: weight 1, bias 0
    nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")  # torchvision's scheme
    if width != 1.0:  # torchvision sizes fc for 512 * 4 features
        net.fc = nn.Linear(scaled(512, width) * Bottleneck.expansion, num_classes)
    if dropout_in_head(dropout, dropout_placement):
        net.fc = nn.Sequential(nn.Dropout(dropout), net.fc)
    swap_activations(net, activation)
    if init != "torchvision":
        initialize(net, init, activation, init_std)
    if zero_init_residual:
        zero_last_layer_of_each_branch(net)
    return net
