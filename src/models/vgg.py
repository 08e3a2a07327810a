"""VGG-19 (Simonyan & Zisserman 2015, configuration E) from torchvision's VGG, adapted.

Adaptations: input channels, class count, optional batch norm (`vgg19_bn`), a width multiplier
on every channel count (all 16 conv + 3 FC layers kept), activation swap, classifier dropout
`p` (torchvision's default 0.5 is *not* kept: with no dropout the layers are removed, so runs
without the dropout regularizer really have none), and a small-input head: for 32x32 images
the 5 pooling stages leave 1x1 maps, so the classifier is 512 -> 512 -> 512 -> classes as in the
common CIFAR-10 re-implementation instead of ImageNet's 25088 -> 4096 -> 4096 -> classes.
At width 1 with `small_input=False` and 3 input channels the parameter count equals
torchvision's `vgg19(num_classes=...)` (or `vgg19_bn`).

Defaults chosen so that `model=vgg19` learns with the project's default optimizer (SGD, lr 0.05,
momentum 0.9, batch 32): batch norm on and the `cifar` init. torchvision's own init (`init=
"torchvision"`) is tuned for the 4096-wide ImageNet head: its N(0, 0.01²) linears shrink the signal
by √(fan·10⁻⁴) per layer (0.23 at 512 wide, 0.08 at 64), both forward and backward, so on the
512-512-512 head the logits start near 10⁻⁴ and every conv gets a relative gradient ‖g‖/‖θ‖ near
10⁻⁵: a saddle the net does not leave, while the head's ReLUs die. Without batch norm VGG-19 does
not learn at lr 0.05 under any init tried (it needs ≈ 0.01). Measurements: `docs/models_and_data.md`.

Dropout (`dropout=p`, set by `reg=dropout`), where `dropout_placement` says:
- `head` (default): the classifier's two `nn.Dropout(p)`, after its hidden FC layers.
- `trunk`: spatial dropout `nn.Dropout2d(p)` after each of the 5 max-pooling stages (5 modules; whole
  feature maps zeroed, Tompson et al. 2015). After the pooling rather than after every conv: one
  module per stage, as LeNet-5's, and a stage's 2-4 convs see undisturbed maps from one another.
  Each sits with its pooling in that pooling's `Sequential` slot, so every conv keeps its index in
  `features` (and the monitor its label). With batch norm, a dropped map reaches the next stage's
  first BatchNorm, whose running variance (eval) differs from its training batch variance: the
  "variance shift" of dropout before batch norm (Li et al. 2019). At 32x32 input the 5th stage's maps
  are 1x1, so its dropout zeroes single features of the classifier's input.
- `both`: the seven.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torchvision.models.vgg import VGG, cfgs, make_layers

from src.models.common import (
    REINITS,
    Activation,
    DropoutPlacement,
    dropout_in_head,
    dropout_in_trunk,
    initialize,
    scaled,
    swap_activations,
    then_dropout2d,
)
from src.settings.signature import checked
from src.settings.types import ClassCount, Fraction, PositiveFloat, PositiveInt

VggInit = Literal[("cifar", "torchvision", *REINITS)]


def torchvision_vgg_init(net: nn.Module) -> None:
    """torchvision's VGG initialization: convs Kaiming normal, fan-out (He et al. 2015), biases 0;
    BatchNorm γ=1, β=0; linears N(0, 0.01²), biases 0 (sized for the 4096-wide ImageNet head)."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.constant_(m.bias, 0)


def cifar_vgg_init(net: nn.Module) -> None:
    """The init of the common CIFAR-10 re-implementation that reaches 92.3% without batch norm
    (chengyangfu/pytorch-vgg-cifar10): convs N(0, 2/(k·k·out_channels)), i.e. Kaiming normal fan-out
    (He et al. 2015), biases 0; linears keep PyTorch's layer default, U(±1/√fan_in) for weights and
    biases (std 1/√(3·fan_in): 0.026 at 512 inputs instead of torchvision's 0.01); BatchNorm γ=1, β=0."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.Linear)):
            m.reset_parameters()


@checked("model")
def vgg19(
    in_channels: PositiveInt = 3,
    num_classes: ClassCount = 10,
    image_size: PositiveInt = 32,
    small_input: bool = True,
    batch_norm: bool = True,
    width: PositiveFloat = 1.0,
    activation: Activation = "relu",
    init: VggInit = "cifar",
    init_std: PositiveFloat = 0.02,
    dropout: Fraction = 0.0,
    dropout_placement: DropoutPlacement = "head",
) -> VGG:
    """VGG-19 (`batch_norm=True`: `vgg19_bn`); `init`: `cifar` (default, `cifar_vgg_init`), `torchvision`
    (`torchvision_vgg_init`), or `kaiming`, `xavier`, `normal` re-initializing every conv and linear layer."""
    del image_size  # adaptive pooling makes the network size-agnostic
    layer_cfg = [v if v == "M" else scaled(v, width) for v in cfgs["E"]]
    features = make_layers(layer_cfg, batch_norm=batch_norm)
    features[0] = nn.Conv2d(in_channels, layer_cfg[0], kernel_size=3, padding=1)
    if dropout_in_trunk(dropout, dropout_placement):
        for i, m in enumerate(features):
            if isinstance(m, nn.MaxPool2d):
                features[i] = then_dropout2d(m, dropout)  # in the pooling's slot: conv indices unchanged
    with torch.device("meta"):  # skip allocating ImageNet's 100M-weight head when it is replaced below
        net = VGG(nn.Identity(), num_classes=num_classes, init_weights=False, dropout=dropout)
    net.features = features
    net.avgpool = nn.AdaptiveAvgPool2d((7, 7))
    last = scaled(512, width)
    if small_input:
        net.avgpool = nn.AdaptiveAvgPool2d(1)
        net.classifier = nn.Sequential(
            nn.Linear(last, last), nn.ReLU(True), nn.Dropout(dropout),
            nn.Linear(last, last), nn.ReLU(True), nn.Dropout(dropout),
            nn.Linear(last, num_classes),
        )
    elif width != 1.0:
        hidden = scaled(4096, width)
        net.classifier = nn.Sequential(
            nn.Linear(last * 7 * 7, hidden), nn.ReLU(True), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )
    else:
        net.classifier = net.classifier.to_empty(device="cpu")  # torchvision's head, initialized below
    if not dropout_in_head(dropout, dropout_placement):  # no head dropout selected: no dropout layers there
        for i, m in enumerate(net.classifier):
            if isinstance(m, nn.Dropout):
                net.classifier[i] = nn.Identity()
    swap_activations(net, activation)
    if init == "cifar":
        cifar_vgg_init(net)
    elif init == "torchvision":
        torchvision_vgg_init(net)
    else:
        torchvision_vgg_init(net)  # norm layers and the meta-built ImageNet head need values first
        initialize(net, init, activation, init_std)
    return net
