"""`reg.dropout.placement`: where each model puts its dropout (`head`, `trunk`, `both`), that trunk dropout acts
inside the trunk in training and is the identity in eval, that the conv/linear layers keep their names and call
order (the monitor's labels), that `head` is the layout of before, and that a bad placement is refused by name."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from src.monitor.layers import ForwardOrder, candidate_layers
from src.training.regularizers import Dropout

P = 0.3
PLACEMENTS = ("head", "trunk", "both")


def build(model: str, dropout: float = 0.0, **kwargs: object) -> nn.Module:
    """A small net of `model` (same weights for the same seed whatever the dropout: dropout has no parameters)."""
    from src.models import lenet5, mlp, resnet152, vgg19

    torch.manual_seed(0)
    if model == "lenet5":
        return lenet5(dropout=dropout, **kwargs)
    if model == "vgg19":
        return vgg19(width=0.0625, dropout=dropout, **kwargs)
    if model == "resnet152":
        return resnet152(width=0.0625, dropout=dropout, **kwargs)
    return mlp(in_channels=1, image_size=8, depth=3, width=32, dropout=dropout, **kwargs)


def dropouts(net: nn.Module) -> list[tuple[str, type[nn.Module]]]:
    return [(name, type(m)) for name, m in net.named_modules() if isinstance(m, (nn.Dropout, nn.Dropout2d))]


def layer_names(net: nn.Module) -> list[str]:
    """The modules the gradient monitor labels (conv and linear layers), by name, in registration order."""
    return [name for name, _ in candidate_layers(net, [n for n, _ in net.named_parameters()])]


def called_order(net: nn.Module, x: Tensor) -> list[str]:
    """The order a training forward pass calls those layers: the depth index of the monitor's labels."""
    order = ForwardOrder(net, [n for n, _ in net.named_parameters()])
    order.start()
    net.train()(x)
    return order.stop()


INPUTS = {"lenet5": (1, 32), "vgg19": (3, 32), "resnet152": (3, 8), "mlp": (1, 8)}  # (channels, image size)


def images(model: str, n: int = 4) -> Tensor:
    channels, size = INPUTS[model]
    return torch.randn(n, channels, size, size, generator=torch.Generator().manual_seed(1))


# ---- where the modules sit --------------------------------------------------------------------------

HEAD = {  # the layout of before the knob existed (tests/test_regularizers.py holds the same)
    "lenet5": [("classifier.1", nn.Dropout), ("classifier.4", nn.Dropout)],
    "vgg19": [("classifier.2", nn.Dropout), ("classifier.5", nn.Dropout)],
    "resnet152": [("fc.0", nn.Dropout)],
    "mlp": [("layers.3", nn.Dropout), ("layers.6", nn.Dropout), ("layers.9", nn.Dropout)],
}
RESNET_BLOCKS = [f"layer{s + 1}.{b}" for s, n in enumerate([3, 8, 36, 3]) for b in range(n)]
TRUNK = {
    "lenet5": [("features.2.1", nn.Dropout2d), ("features.5.1", nn.Dropout2d)],  # after S2 and S4
    "vgg19": [(f"features.{i}.1", nn.Dropout2d) for i in (6, 13, 26, 39, 52)],  # after each of the 5 poolings
    "resnet152": [(f"{block}.dropout", nn.Dropout2d) for block in RESNET_BLOCKS],  # in each of the 50 branches
    "mlp": HEAD["mlp"],  # the hidden layers are trunk and head alike
}


@pytest.mark.parametrize("model", list(HEAD))
def test_each_placement_puts_the_documented_modules_where_documented(model: str) -> None:
    both = HEAD[model] if model == "mlp" else TRUNK[model] + HEAD[model]
    for placement, expected in zip(PLACEMENTS, (HEAD[model], TRUNK[model], both), strict=True):
        net = build(model, P, dropout_placement=placement)
        assert dropouts(net) == expected, placement
        assert all(m.p == P for m in net.modules() if isinstance(m, (nn.Dropout, nn.Dropout2d)))
        assert dropouts(build(model, 0.0, dropout_placement=placement)) == [], "p = 0: no modules at all"
    trunk = build(model, P, dropout_placement="trunk")
    modules = dict(trunk.named_modules())
    if model in ("lenet5", "vgg19"):  # each spatial dropout right after a pooling, in the pooling's slot
        pool = nn.AvgPool2d if model == "lenet5" else nn.MaxPool2d
        for name, _ in TRUNK[model]:
            assert isinstance(modules[name.removesuffix(".1") + ".0"], pool)
        assert sum(isinstance(m, pool) for m in trunk.modules()) == len(TRUNK[model]), "every pooling has one"


def test_resnet_branch_dropout_sits_between_conv2_and_conv3_and_never_on_the_shortcut() -> None:
    from src.models.resnet import PlainBottleneck

    net = build("resnet152", P, dropout_placement="trunk")
    block = net.layer2[0]  # a block with a projection shortcut
    seen: list[str] = []
    for name in ("conv2", "dropout", "conv3", "downsample"):
        getattr(block, name).register_forward_pre_hook(lambda m, a, name=name: seen.append(name))
    net.train()(images("resnet152"))
    assert seen == ["conv2", "dropout", "conv3", "downsample"]
    plain = build("resnet152", P, dropout_placement="trunk", residual=False)
    assert dropouts(plain) == TRUNK["resnet152"]
    assert all(isinstance(b, PlainBottleneck) and b.downsample is None for b in plain.modules() if hasattr(b, "conv3"))


# ---- the monitor's labels ---------------------------------------------------------------------------

@pytest.mark.parametrize("model", list(HEAD))
def test_conv_and_linear_layers_keep_their_names_and_call_order(model: str) -> None:
    """Trunk dropout adds no label: trunk = the net without dropout, both = head, name and forward order alike.
    (The MLP's trunk is its head: there trunk = head.)"""
    x = images(model)
    plain, head = build(model, P if model == "mlp" else 0.0), build(model, P, dropout_placement="head")
    trunk, both = build(model, P, dropout_placement="trunk"), build(model, P, dropout_placement="both")
    assert layer_names(trunk) == layer_names(plain) and layer_names(both) == layer_names(head)
    assert called_order(trunk, x) == called_order(plain, x) and called_order(both, x) == called_order(head, x)
    assert set(trunk.state_dict()) == set(plain.state_dict())  # checkpoints load across placements


# ---- eval: the identity; train: drops inside the trunk ---------------------------------------------

@pytest.mark.parametrize("model", ["lenet5", "vgg19", "resnet152"])
@pytest.mark.parametrize("placement", ["trunk", "both"])
def test_in_eval_the_net_computes_what_the_net_without_dropout_computes(model: str, placement: str) -> None:
    plain, dropped = build(model).eval(), build(model, P, dropout_placement=placement).eval()
    # the same weights and batch-norm statistics, by position: head dropout renames LeNet-5's F6 and ResNet's fc
    dropped.load_state_dict(dict(zip(dropped.state_dict(), plain.state_dict().values(), strict=True)))
    x = images(model)
    with torch.no_grad():
        torch.testing.assert_close(dropped(x), plain(x), rtol=0, atol=0)
        torch.testing.assert_close(dropped(x), dropped(x), rtol=0, atol=0)  # nothing sampled at test time


TRUNK_LAYER = {  # a trunk layer right after a trunk dropout: its input is the dropout's output
    "lenet5": "features.3",  # C3, after S2's dropout
    "vgg19": "features.7",  # the second stage's first conv, after the first pooling's dropout
    "resnet152": "layer1.0.conv3",  # the first branch's last conv
}


def trunk_input(net: nn.Module, name: str, x: Tensor, seed: int = 5) -> Tensor:
    """What the layer `name` receives in one training forward pass of `x` (the dropout masks drawn from `seed`)."""
    seen: list[Tensor] = []
    handle = dict(net.named_modules())[name].register_forward_pre_hook(lambda m, a: seen.append(a[0].detach()))
    torch.manual_seed(seed)
    with torch.no_grad():
        net.train()(x)
    handle.remove()
    return seen[0]


def dropped_maps(activation: Tensor) -> Tensor:
    """Per (sample, channel): True where the whole feature map is exactly zero."""
    return (activation == 0).flatten(2).all(dim=2)


@pytest.mark.parametrize("model", list(TRUNK_LAYER))
def test_in_training_trunk_dropout_zeroes_whole_maps_at_rate_p_and_head_dropout_does_not_reach_the_trunk(
    model: str,
) -> None:
    """The pair: with `head` (and without dropout) no trunk map is zero; with `trunk` and `both` a share ≈ p is,
    the rest exactly the no-dropout activation times 1/(1 − p) (the layers before are the same, same weights)."""
    x = images(model, n=256)
    reference = trunk_input(build(model), TRUNK_LAYER[model], x)
    assert dropped_maps(reference).float().mean().item() == 0.0, "no map is zero without dropout"
    head = trunk_input(build(model, P, dropout_placement="head"), TRUNK_LAYER[model], x)
    torch.testing.assert_close(head, reference, rtol=0, atol=0)  # head dropout leaves the trunk alone
    for placement in ("trunk", "both"):
        seen = trunk_input(build(model, P, dropout_placement=placement), TRUNK_LAYER[model], x)
        dropped = dropped_maps(seen)
        print(f"{model} {placement}: {dropped.float().mean().item():.3f} of {dropped.numel()} maps zero (p = {P})")
        assert dropped.float().mean().item() == pytest.approx(P, abs=0.06)
        kept = ~dropped
        torch.testing.assert_close(seen[kept], reference[kept] / (1 - P))  # inverted dropout, whole maps kept


def test_mlp_trunk_is_its_hidden_layers_and_drops_units_at_rate_p() -> None:
    x = images("mlp", n=512)
    reference = trunk_input(build("mlp"), "layers.3", x)  # the second hidden Linear's input (no dropout before)
    for placement in PLACEMENTS:
        seen = trunk_input(build("mlp", P, dropout_placement=placement), "layers.4", x)  # one Dropout before
        zero = (seen == 0) & (reference != 0)  # ReLU zeros are not dropout's
        assert zero.sum().item() / (reference != 0).sum().item() == pytest.approx(P, abs=0.03), placement


# ---- the regularizer and the config ----------------------------------------------------------------

def test_head_is_the_default_and_hands_the_builder_what_it_did_before() -> None:
    assert Dropout().placement == "head" and Dropout(0.2).network_kwargs() == {"dropout": 0.2}
    assert Dropout(0.2, "trunk").network_kwargs() == {"dropout": 0.2, "dropout_placement": "trunk"}
    for model in HEAD:
        default, head = build(model, P), build(model, P, dropout_placement="head")
        assert [(n, type(m)) for n, m in default.named_modules()] == [(n, type(m)) for n, m in head.named_modules()]


def test_the_study_arms_and_the_config_build_a_trunk_net(compose) -> None:
    from src.training.builders import build_module

    for arm, p in (("dropout_trunk_p01", 0.1), ("dropout_trunk_p03", 0.3)):
        (reg,) = build_module(cfg := compose(f"+study/arm={arm}")).regularizers
        assert (reg.p, reg.placement) == (p, "trunk") and cfg.reg.dropout.placement == "trunk"
    net = build_module(compose("reg=dropout", "reg.dropout.placement=both", "reg.dropout.p=0.3")).net
    assert dropouts(net) == TRUNK["lenet5"] + HEAD["lenet5"]
    assert dropouts(build_module(compose("reg=dropout")).net) == HEAD["lenet5"]


def head_only_net(in_channels: int = 1, num_classes: int = 10, image_size: int = 32, activation: str = "tanh",
                  pool: str = "avg", init: str = "default", init_std: float = 0.02, dropout: float = 0.0) -> nn.Module:
    """A builder that takes `dropout` but not `dropout_placement` (a model written before the knob)."""
    return nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(in_channels * image_size**2, num_classes))


BAD: list[tuple[Callable[[], object], str]] = [
    (lambda: Dropout(0.3, placement="inside"),
     "reg.dropout.placement='inside' is not allowed; it must be one of ['head', 'trunk', 'both']"),
    (lambda: build("lenet5", P, dropout_placement="conv"),
     "model.dropout_placement='conv' is not allowed; it must be one of ['head', 'trunk', 'both']"),
    (lambda: build("resnet152", P, dropout_placement=None),
     "model.dropout_placement=None is not allowed; it must be one of ['head', 'trunk', 'both']"),
]


@pytest.mark.parametrize(("make", "message"), BAD)
def test_a_bad_placement_is_refused_naming_the_setting_and_the_allowed_values(make, message: str) -> None:  # noqa: ANN001
    from src.settings import ConfigError

    with pytest.raises(ConfigError) as err:
        make()
    assert str(err.value).startswith(message), err.value


def test_the_config_refuses_a_bad_placement_and_one_set_on_the_model(compose) -> None:
    from src.config.checks import the_model_takes_what_a_regularizer_sets
    from src.config.validation import validate
    from src.settings import ConfigError

    with pytest.raises(ConfigError, match=r"reg\.dropout\.placement='inside' is not allowed; it must be one of "):
        validate(compose("reg=dropout", "reg.dropout.placement=inside"))
    with pytest.raises(ConfigError, match=r"model\.dropout_placement is not a setting of the model config; the drop"):
        validate(compose("+model.dropout_placement=trunk"))
    validate(compose("reg=dropout", "reg.dropout.placement=trunk"))  # the good value passes
    target = "model._target_=tests.test_dropout_placement.head_only_net"
    assert the_model_takes_what_a_regularizer_sets(compose(target, "reg=dropout")) == []  # head: as before
    (line,) = the_model_takes_what_a_regularizer_sets(compose(target, "reg=dropout", "reg.dropout.placement=trunk"))
    assert "sets the model's dropout_placement argument and head_only_net takes none" in line


def test_a_trunk_run_trains_logs_its_placement_and_completes(run_cli, mlflow_client) -> None:  # noqa: ANN001
    from tests.mlflow_reads import all_runs
    from tests.test_reg_config import TINY

    assert run_cli("reg=dropout", "reg.dropout.placement=trunk", "reg.dropout.p=0.3", *TINY) == 0
    (run,) = all_runs(mlflow_client)
    assert run.data.tags["outcome"] == "completed" and run.data.params["reg.dropout.placement"] == "trunk"
    assert "train/loss" in run.data.metrics
