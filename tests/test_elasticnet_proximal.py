"""Elastic Net's proximal mode through the real LightningModule and Trainer: one SGD step equals the closed
form, exact zeros appear (and `reg/sparsity` moves), r = 1 is proximal L1, and the value is still logged."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from src.training.regularizers import L1, ElasticNet
from src.training.weight_stats import weight_statistics
from tests.test_regularizers import LAM, data_grad, known_net, small_net, train_steps


def test_one_sgd_step_is_the_soft_threshold_then_the_shrink() -> None:
    lr, lam, r = 0.5, 0.04, 0.25  # threshold ηλr = 0.005, shrink 1/(1 + 2ηλ(1 − r)) = 1/1.03
    before = small_net()
    g = data_grad(before)
    net = small_net()
    metrics = train_steps(net, [ElasticNet(lam, r, proximal=True)], partial(torch.optim.SGD, lr=lr))
    for p0, gp, p1 in zip(before.parameters(), g, net.parameters(), strict=True):
        z = p0.detach() - lr * gp  # the optimizer's step on the data loss alone
        expected = torch.sign(z) * torch.clamp(z.abs() - lr * lam * r, min=0) / (1 + 2 * lr * lam * (1 - r))
        torch.testing.assert_close(p1.detach(), expected)
    theta0 = [p.detach() for p in before.parameters()]
    value = lam * sum(r * float(p.abs().sum()) + (1 - r) * float((p**2).sum()) for p in theta0)
    assert metrics["train/penalty"] == pytest.approx(value, rel=1e-6)  # logged at θ0, as in gradient mode


def test_exact_zeros_appear_and_sparsity_moves_only_in_proximal_mode() -> None:
    lr, lam = 0.5, 0.04
    sparsity = {}
    for proximal in (True, False):
        net = small_net()
        reg = ElasticNet(lam, 0.5, proximal=proximal)
        train_steps(net, [reg], partial(torch.optim.SGD, lr=lr), steps=3)
        sparsity[proximal] = float(weight_statistics(net, [reg])["reg/sparsity"])
    assert sparsity[True] > 0.05  # small_net has 96 weights: several are exactly 0
    assert sparsity[False] == 0  # the gradient form moves weights around 0, never onto it


def test_r1_equals_proximal_l1_with_the_same_strength() -> None:
    sgd = partial(torch.optim.SGD, lr=0.5, momentum=0.9)
    en, l1 = small_net(), small_net()
    train_steps(en, [ElasticNet(0.02, 1.0, proximal=True)], sgd, steps=3)
    train_steps(l1, [L1(0.02, proximal=True)], sgd, steps=3)
    for a, b in zip(en.parameters(), l1.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_proximal_penalty_is_the_same_value_detached() -> None:
    net = known_net()
    gradient_form, proximal = ElasticNet(LAM, 0.25), ElasticNet(LAM, 0.25, proximal=True)
    assert proximal.penalty(net).item() == pytest.approx(gradient_form.penalty(net).item())
    assert gradient_form.penalty(net).requires_grad and not proximal.penalty(net).requires_grad
