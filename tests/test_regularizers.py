"""The regularizers' math on small known networks: penalties, their gradients, the proximal and the
decoupled steps (through the real LightningModule and Trainer), and dropout in the three models."""

from __future__ import annotations

from functools import partial

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from src.training.module import ClassificationModule
from src.training.regularizers import L1, L2, Dropout, ElasticNet, Regularizer

LAM = 0.3


def known_net() -> nn.Module:
    """Conv (with bias) -> BatchNorm -> Linear (with bias), weights set to fixed values with exact zeros."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 2), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2, 3))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([1.0, -2.0, 0.0, 0.5, -0.25, 3.0, 0.0, -1.0]).view(2, 1, 2, 2))
        net[0].bias.copy_(torch.tensor([4.0, -5.0]))
        net[1].weight.copy_(torch.tensor([2.0, -3.0]))
        net[1].bias.copy_(torch.tensor([0.7, -0.7]))
        net[3].weight.copy_(torch.tensor([[1.5, 0.0], [-0.5, 2.0], [0.0, -1.0]]))
        net[3].bias.copy_(torch.tensor([6.0, 0.0, -6.0]))
    return net


# closed forms of the fixed values above, written out by hand
WEIGHTS_ABS = (1 + 2 + 0 + 0.5 + 0.25 + 3 + 0 + 1) + (1.5 + 0 + 0.5 + 2 + 0 + 1)  # 12.75
WEIGHTS_SQ = (1 + 4 + 0 + 0.25 + 0.0625 + 9 + 0 + 1) + (2.25 + 0 + 0.25 + 4 + 0 + 1)  # 22.8125
BIAS_ABS, BIAS_SQ = (4 + 5) + (6 + 0 + 6), (16 + 25) + (36 + 0 + 36)
NORM_ABS, NORM_SQ = 2 + 3 + 0.7 + 0.7, 4 + 9 + 0.49 + 0.49


@pytest.mark.parametrize("include_bias", [False, True])
@pytest.mark.parametrize("include_norm", [False, True])
def test_penalties_equal_closed_forms(include_bias: bool, include_norm: bool) -> None:
    net = known_net()
    l1_sum = WEIGHTS_ABS + include_bias * BIAS_ABS + include_norm * NORM_ABS
    sq_sum = WEIGHTS_SQ + include_bias * BIAS_SQ + include_norm * NORM_SQ
    knobs = {"include_bias": include_bias, "include_norm": include_norm}
    assert L1(LAM, **knobs).penalty(net).item() == pytest.approx(LAM * l1_sum)
    assert L2(LAM, **knobs).penalty(net).item() == pytest.approx(LAM * sq_sum)
    assert ElasticNet(LAM, 0.25, **knobs).penalty(net).item() == pytest.approx(LAM * (0.25 * l1_sum + 0.75 * sq_sum))
    assert ElasticNet(LAM, 1.0, **knobs).penalty(net).item() == pytest.approx(L1(LAM, **knobs).penalty(net).item())
    assert ElasticNet(LAM, 0.0, **knobs).penalty(net).item() == pytest.approx(L2(LAM, **knobs).penalty(net).item())
    # the value is the same whichever way the term acts (train/penalty means one thing)
    assert L1(LAM, proximal=True, **knobs).penalty(net).item() == pytest.approx(LAM * l1_sum)
    assert L2(LAM, mode="decoupled", **knobs).penalty(net).item() == pytest.approx(LAM * sq_sum)
    assert Dropout(0.5).penalty(net) is None


def autograd_of_penalty(reg: Regularizer, net: nn.Module) -> dict[str, torch.Tensor | None]:
    """∂penalty/∂θ by autograd through `penalty()`: the loss-form route."""
    net.zero_grad(set_to_none=True)
    reg.penalty(net).backward()
    return {name: p.grad for name, p in net.named_parameters()}


def closed_form_gradient(reg: Regularizer, net: nn.Module) -> dict[str, torch.Tensor | None]:
    """`penalty_gradient()`, the closed form the module adds to the data gradient, by parameter name."""
    names = {id(p): name for name, p in net.named_parameters()}
    given = {names[id(p)]: g for p, g in reg.penalty_gradient(net)}
    return {name: given.get(name) for name in names.values()}


@pytest.mark.parametrize(
    "reg, expected",
    [
        (L1(LAM), lambda w: LAM * torch.sign(w)),
        (L2(LAM), lambda w: 2 * LAM * w),
        (ElasticNet(LAM, 0.25), lambda w: LAM * (0.25 * torch.sign(w) + 2 * 0.75 * w)),
        (ElasticNet(LAM, 1.0), lambda w: LAM * torch.sign(w)),
        (ElasticNet(LAM, 0.0), lambda w: 2 * LAM * w),
    ],
    ids=["l1", "l2", "elasticnet", "elasticnet-r1", "elasticnet-r0"],
)
@pytest.mark.parametrize("route", [closed_form_gradient, autograd_of_penalty], ids=["closed-form", "autograd"])
def test_penalty_gradient_is_the_textbook_one(reg: Regularizer, expected, route) -> None:  # noqa: ANN001
    """Both routes to the penalty's gradient (the closed form the module uses, and autograd through the
    penalty's value) equal the textbook formula, written out above independently of either."""
    net = known_net()
    grads = route(reg, net)
    for name in ("0.weight", "3.weight"):
        w = net.get_parameter(name).detach()
        torch.testing.assert_close(grads[name], expected(w), rtol=1e-6, atol=1e-7)  # float32: a few ulp
        assert grads[name][w == 0].abs().sum() == 0  # subgradient 0 at exact zeros, never ±λ
    for excluded in ("0.bias", "1.weight", "1.bias", "3.bias"):
        assert grads[excluded] is None or not grads[excluded].any(), excluded
    with_bias = route(type(reg)(**{**vars(reg), "include_bias": True}), known_net())
    torch.testing.assert_close(with_bias["3.bias"], expected(net[3].bias.detach()), rtol=1e-6, atol=1e-7)
    assert with_bias["1.weight"] is None


def test_penalty_gradient_is_zero_under_proximal_and_decoupled_modes() -> None:
    """They act through the step, not the loss: no gradient to add, by either route; their loss-form
    siblings on the same net do have one (so an empty answer is not the default for every setting)."""
    net = known_net()
    for reg in (L1(LAM, proximal=True), L2(LAM, mode="decoupled"), ElasticNet(LAM, 0.25, proximal=True)):
        assert reg.penalty_gradient(net) == [], reg
        assert not reg.penalty(net).requires_grad
    for reg in (L1(LAM), L2(LAM), ElasticNet(LAM, 0.25)):
        assert {id(p) for p, _ in reg.penalty_gradient(net)} == {id(net[0].weight), id(net[3].weight)}, reg
    assert Dropout(0.5).penalty_gradient(net) == []


# ---- one real Lightning step -------------------------------------------------------------------

def make_batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(16, 1, 3, 3, generator=gen), torch.arange(16) % 3


def small_net() -> nn.Module:
    torch.manual_seed(2)
    return nn.Sequential(nn.Flatten(), nn.Linear(9, 8, bias=False), nn.Tanh(), nn.Linear(8, 3, bias=False))


def train_steps(net: nn.Module, regs: list[Regularizer], optimizer, steps: int = 1) -> dict[str, float]:  # noqa: ANN001
    """Train `net` in place with the real module and Trainer for `steps` steps on one fixed batch."""
    module = ClassificationModule(net=net, optimizer=optimizer, num_classes=3, regularizers=regs)
    loader = DataLoader(TensorDataset(*make_batch()), batch_size=16)
    trainer = pl.Trainer(
        max_steps=steps, max_epochs=-1, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1, limit_val_batches=0,
    )
    trainer.fit(module, train_dataloaders=loader)
    return {k: float(v) for k, v in trainer.callback_metrics.items()}


def data_grad(net: nn.Module) -> list[torch.Tensor]:
    x, y = make_batch()
    net.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(net(x), y).backward()
    return [p.grad.clone() for p in net.parameters()]


def test_proximal_l1_is_the_soft_threshold_of_one_sgd_step_and_gives_exact_zeros() -> None:
    lr, lam = 0.5, 0.02  # threshold ηλ = 0.01
    before = small_net()
    g = data_grad(before)
    net = small_net()
    train_steps(net, [L1(lam, proximal=True)], partial(torch.optim.SGD, lr=lr))
    for p0, gp, p1 in zip(before.parameters(), g, net.parameters(), strict=True):
        z = p0.detach() - lr * gp
        torch.testing.assert_close(p1.detach(), torch.sign(z) * torch.clamp(z.abs() - lr * lam, min=0))
    zeros = sum(int((p == 0).sum()) for p in net.parameters())
    assert zeros > 0
    # the subgradient form on the same step moves weights by exactly ηλ·sign(θ): no exact zeros appear
    sub = small_net()
    train_steps(sub, [L1(lam)], partial(torch.optim.SGD, lr=lr))
    for p0, gp, p1 in zip(before.parameters(), g, sub.parameters(), strict=True):
        expected = p0.detach() - lr * (gp + lam * torch.sign(p0.detach()))
        torch.testing.assert_close(p1.detach(), expected)
    assert sum(int((p == 0).sum()) for p in sub.parameters()) == 0


def test_decoupled_l2_equals_penalty_l2_with_plain_sgd_but_not_with_adam() -> None:
    lr, lam = 0.3, 0.05
    sgd = partial(torch.optim.SGD, lr=lr, momentum=0.0)
    penalty_net, decoupled_net = small_net(), small_net()
    theta0 = [p.detach().clone() for p in small_net().parameters()]
    g = data_grad(small_net())
    metrics = train_steps(penalty_net, [L2(lam, mode="penalty")], sgd)
    decoupled_metrics = train_steps(decoupled_net, [L2(lam, mode="decoupled")], sgd)
    for p0, gp, pp, pd in zip(theta0, g, penalty_net.parameters(), decoupled_net.parameters(), strict=True):
        textbook = (1 - 2 * lr * lam) * p0 - lr * gp  # never + λ·sign(θ)
        torch.testing.assert_close(pp.detach(), textbook)
        torch.testing.assert_close(pd.detach(), textbook)
    # data loss and penalty are logged apart, both at θ0
    x, y = make_batch()
    assert metrics["train/loss"] == pytest.approx(nn.functional.cross_entropy(small_net()(x), y).item(), rel=1e-6)
    assert metrics["train/penalty"] == pytest.approx(lam * sum(float((p**2).sum()) for p in theta0), rel=1e-6)
    assert decoupled_metrics["train/penalty"] == pytest.approx(metrics["train/penalty"], rel=1e-6)

    adam = partial(torch.optim.Adam, lr=0.01)
    penalty_net, decoupled_net = small_net(), small_net()
    train_steps(penalty_net, [L2(lam, mode="penalty")], adam, steps=3)
    train_steps(decoupled_net, [L2(lam, mode="decoupled")], adam, steps=3)
    pairs = zip(penalty_net.parameters(), decoupled_net.parameters(), strict=True)
    gap = max((a - b).abs().max().item() for a, b in pairs)
    assert gap > 1e-4
    # decoupled + Adam is exactly AdamW with weight_decay = 2λ (every tensor here is penalized)
    adamw_net = small_net()
    train_steps(adamw_net, [], partial(torch.optim.AdamW, lr=0.01, weight_decay=2 * lam), steps=3)
    for a, b in zip(adamw_net.parameters(), decoupled_net.parameters(), strict=True):
        torch.testing.assert_close(a, b)


# ---- dropout ------------------------------------------------------------------------------------

def test_dropout_scales_kept_units_in_training_and_is_identity_in_eval() -> None:
    from src.models import lenet5

    p = 0.25
    torch.manual_seed(3)
    with_dropout = lenet5(dropout=p)
    torch.manual_seed(3)
    without = lenet5()
    drops = [m for m in with_dropout.modules() if isinstance(m, nn.Dropout)]
    x = torch.ones(200_000)
    out = drops[0].train()(x)
    kept = out[out != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / (1 - p)))  # inverted dropout
    assert (out == 0).float().mean().item() == pytest.approx(p, abs=0.01)
    assert out.mean().item() == pytest.approx(1.0, abs=0.01)  # expectation preserved
    images = torch.randn(4, 1, 32, 32)
    with_dropout.eval()
    without.eval()
    torch.testing.assert_close(with_dropout(images), with_dropout(images))  # no sampling at test time
    torch.testing.assert_close(with_dropout(images), without(images))  # eval = the network without dropout


@pytest.mark.parametrize("model, count", [("lenet5", 2), ("vgg19", 2), ("resnet152", 1)])
def test_dropout_modules_in_each_model_only_when_selected(compose, model: str, count: int) -> None:
    from src.training.builders import build_module

    small = [] if model == "lenet5" else ["model.width=0.0625"]
    net = build_module(compose(f"model={model}", "reg=[l2,dropout]", "reg.dropout.p=0.3", *small)).net
    drops = [m for m in net.modules() if isinstance(m, nn.Dropout)]
    assert len(drops) == count and all(m.p == 0.3 for m in drops)
    if model == "resnet152":
        assert isinstance(net.fc[0], nn.Dropout)  # just before fc
    if model == "lenet5":
        assert [type(m) for m in net.classifier][:5] == [nn.Flatten, nn.Dropout, nn.Linear, nn.Tanh, nn.Dropout]
    for reg in ("reg=[]", "reg=l2"):
        net = build_module(compose(f"model={model}", reg, *small)).net
        assert not any(isinstance(m, nn.Dropout) for m in net.modules())  # VGG's built-in 0.5 is gone


@pytest.mark.parametrize(("make", "message"), [
    (lambda: L1(strength=-1), "reg.l1.strength=-1 is not allowed; it must be a number >= 0"),
    (lambda: L1(proximal="yes"), "reg.l1.proximal='yes' is not allowed; it must be true or false"),
    (lambda: L2(mode="coupled"), "reg.l2.mode='coupled' is not allowed; it must be one of ['penalty', 'decoupled']"),
    (lambda: ElasticNet(1e-4, 1.5), "reg.elasticnet.l1_ratio=1.5 is not allowed; it must be a number in [0, 1]"),
    (lambda: Dropout(p=True), "reg.dropout.p=True is not allowed; it must be a number in [0, 1)"),
    (lambda: Dropout(placement="conv"), "reg.dropout.placement='conv' is not allowed; it must be one of ['head', "),
    (lambda: L2(strength=float("nan")), "reg.l2.strength=nan is not allowed; it must be a number >= 0"),
    (lambda: L1(lam=1), "reg.l1.lam is not a setting of L1; its settings are ['include_bias', 'include_norm', "),
])
def test_direct_construction_refuses_bad_settings_in_the_config_words(make, message: str) -> None:
    from src.settings import ConfigError

    with pytest.raises(ConfigError) as err:
        make()
    assert str(err.value).startswith(message), err.value
