"""Model builders: the paper's LeNet-5 layout, torchvision-equal parameter counts at width 1,
width scaling that keeps depth, activation swap, named inits, and shapes on every input size."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from src.models import LeNet5, lenet5, resnet152, vgg19
from src.models.common import initialize
from src.settings import ConfigError


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def depth(net: nn.Module) -> int:
    """Number of conv + linear layers (what width scaling must keep)."""
    return sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in net.modules())


def test_lenet5_has_the_paper_layout() -> None:
    net = lenet5()
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (1, 6, (5, 5)), (6, 16, (5, 5)), (16, 120, (5, 5))
    ]
    assert [(m.in_features, m.out_features) for m in linears] == [(120, 84), (84, 10)]
    assert sum(isinstance(m, nn.AvgPool2d) for m in net.modules()) == 2
    assert sum(isinstance(m, nn.Tanh) for m in net.modules()) == 4
    assert n_params(net) == 61_706  # C1 156 + C3 2,416 + C5 48,120 + F6 10,164 + out 850
    assert net(torch.zeros(2, 1, 32, 32)).shape == (2, 10)
    assert sum(isinstance(m, nn.MaxPool2d) for m in lenet5(pool="max").modules()) == 2
    assert sum(isinstance(m, nn.ReLU) for m in lenet5(activation="relu").modules()) == 4


@pytest.mark.parametrize("num_classes", [10, 1000])
def test_resnet152_matches_torchvision_at_width_1(num_classes: int) -> None:
    ours = resnet152(in_channels=3, num_classes=num_classes, small_input=False)
    ref = torchvision.models.resnet152(weights=None, num_classes=num_classes)
    assert n_params(ours) == n_params(ref)
    assert [tuple(p.shape) for p in ours.parameters()] == [tuple(p.shape) for p in ref.parameters()]


@pytest.mark.parametrize("batch_norm", [False, True])
def test_vgg19_matches_torchvision_at_width_1(batch_norm: bool) -> None:
    ours = vgg19(in_channels=3, num_classes=10, small_input=False, batch_norm=batch_norm)
    builder = torchvision.models.vgg19_bn if batch_norm else torchvision.models.vgg19
    ref = builder(weights=None, num_classes=10)
    assert n_params(ours) == n_params(ref)
    assert [tuple(p.shape) for p in ours.parameters()] == [tuple(p.shape) for p in ref.parameters()]


@pytest.mark.parametrize("builder, layers", [(resnet152, 152), (vgg19, 19)])
def test_width_scales_channels_but_keeps_depth(builder, layers: int) -> None:  # noqa: ANN001
    full, thin = builder(width=1.0), builder(width=0.125)
    assert depth(full) == depth(thin)
    if builder is resnet152:  # 151 convs + fc (downsample 1x1 convs counted too: 4 of them)
        assert depth(full) == layers + 4
    else:
        assert depth(full) == layers
    assert n_params(thin) < n_params(full) / 30
    out = thin(torch.zeros(2, 3, 32, 32))
    assert out.shape == (2, 10)


@pytest.mark.parametrize("builder", [resnet152, vgg19])
@pytest.mark.parametrize("in_channels, size", [(1, 32), (3, 32), (3, 64)])
def test_every_input_shape_runs(builder, in_channels: int, size: int) -> None:  # noqa: ANN001
    net = builder(in_channels=in_channels, num_classes=7, width=0.0625).eval()
    assert net(torch.zeros(2, in_channels, size, size)).shape == (2, 7)


@pytest.mark.parametrize("builder", [resnet152, vgg19])
@pytest.mark.parametrize("activation, cls", [("tanh", nn.Tanh), ("sigmoid", nn.Sigmoid)])
def test_activation_swap_leaves_no_relu(builder, activation: str, cls: type) -> None:  # noqa: ANN001
    net = builder(width=0.0625, activation=activation)
    assert not any(isinstance(m, nn.ReLU) for m in net.modules())
    assert any(isinstance(m, cls) for m in net.modules())


def test_vgg19_batch_norm_by_default_and_no_dropout() -> None:
    assert sum(isinstance(m, nn.BatchNorm2d) for m in vgg19(width=0.0625).modules()) == 16
    assert not any(isinstance(m, nn.BatchNorm2d) for m in vgg19(width=0.0625, batch_norm=False).modules())
    assert not any(isinstance(m, nn.Dropout) for m in vgg19(width=0.0625).modules())


def test_named_inits() -> None:
    torch.manual_seed(0)
    net = initialize(nn.Sequential(nn.Linear(400, 300), nn.Linear(300, 10)), "normal", std=0.5)
    assert net[0].weight.std().item() == pytest.approx(0.5, rel=0.02)
    assert torch.count_nonzero(net[0].bias) == 0
    net = initialize(nn.Sequential(nn.Linear(400, 300)), "kaiming", activation="relu")
    assert net[0].weight.std().item() == pytest.approx((2 / 400) ** 0.5, rel=0.03)
    net = initialize(nn.Sequential(nn.Linear(400, 300)), "xavier", activation="tanh")
    expected = 5 / 3 * (2 / (400 + 300)) ** 0.5
    assert net[0].weight.std().item() == pytest.approx(expected, rel=0.03)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"activation": "gelu"}, "model.activation='gelu' is not allowed; it must be one of ['relu', 'sigmoid', 'tanh']"),
     ({"init": "orthogonal"}, "model.init='orthogonal' is not allowed; it must be one of ['cifar', 'torchvision', "),
     ({"init": "default"}, "model.init='default' is not allowed; it must be one of ['cifar', 'torchvision', 'kai"),
     ({"width": 0.0}, "model.width=0.0 is not allowed; it must be a number > 0"),
     ({"init": "normal", "init_std": 0.0}, "model.init_std=0.0 is not allowed; it must be a number > 0"),
     ({"batch_norm": 1}, "model.batch_norm=1 is not allowed; it must be true or false"),
     ({"depth": 3}, "model.depth is not a setting of vgg19; its settings are [")],
)
def test_bad_model_values_name_the_key(kwargs: dict, message: str) -> None:
    """Direct calls are checked against the builder's signature as the config is (strict: 1 is no bool)."""
    with pytest.raises(ConfigError) as err:
        vgg19(**{"width": 0.0625, **kwargs})
    assert str(err.value).startswith(message), err.value


def test_bad_lenet_pool_and_image_size_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"model\.pool='median' is not allowed; it must be one of \['avg', 'max'\]"):
        lenet5(pool="median")
    with pytest.raises(ConfigError, match=r"model\.image_size=30 is not allowed; it must be an integer >= 32 and"):
        LeNet5(image_size=30)
