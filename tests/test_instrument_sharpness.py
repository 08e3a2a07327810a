"""Sharpness: the power iteration finds the top Hessian eigenvalue (a quadratic, a 2-layer MLP against the
full Hessian, Adam's preconditioned form against P⁻¹H), probes in train mode with dropout and batch norm
repeat exactly and leave no trace, and the `unstable` event fires on a learning rate past 2/λ_max only."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn
from torch.func import functional_call

from src.monitor.instruments import SharpnessInstrument
from src.monitor.instruments.hessian import largest_eigenvalue, top_eigenvalue
from src.monitor.instruments.sharpness import adam_preconditioner
from tests.zoo import ZOO, run_case


def test_quadratic_top_eigenvalue() -> None:
    torch.manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(12, 12, dtype=torch.float64))
    spectrum = torch.tensor([7.0, 3.0, 2.5, 1.0, 0.5, 0.1, -0.2, -1.0, 0.0, 0.3, 0.2, 0.05], dtype=torch.float64)
    a = q @ torch.diag(spectrum) @ q.T
    theta = torch.randn(12, dtype=torch.float64, requires_grad=True)
    lam, residual, _ = top_eigenvalue(0.5 * theta @ a @ theta, [theta], iterations=100,
                                      generator=torch.Generator().manual_seed(0))
    assert float(lam) == pytest.approx(7.0, rel=1e-6) and float(residual) < 1e-5


def _quadratic(spectrum: list[float], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """0.5·θᵀAθ with A = Q diag(spectrum) Qᵀ, Q a random rotation: a loss whose Hessian's spectrum is known."""
    torch.manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(len(spectrum), len(spectrum), dtype=torch.float64))
    a = q @ torch.diag(torch.tensor(spectrum, dtype=torch.float64)) @ q.T
    theta = torch.randn(len(spectrum), dtype=torch.float64, requires_grad=True)
    return 0.5 * theta @ a @ theta, theta


def test_lanczos_finds_the_top_eigenvalue_past_a_dominant_negative_one() -> None:
    spectrum = [-90.0, *torch.linspace(-5, 1.5, 48).tolist(), 2.0]  # the dominant direction is negative
    loss, theta = _quadratic(spectrum)
    first, _, _ = top_eigenvalue(loss, [theta], 60, torch.Generator().manual_seed(0))
    assert float(first) == pytest.approx(-90.0, rel=1e-4)  # power iteration finds the dominant one
    top = largest_eigenvalue(loss, [theta], 50, torch.Generator().manual_seed(0), tolerance=1e-8)
    assert top.converged and top.value == pytest.approx(2.0, rel=1e-8) and top.residual <= 1e-8
    assert top.products <= 51


def test_lanczos_on_a_near_degenerate_top_pair_gets_the_value_and_says_so() -> None:
    spectrum = [10.0, 9.999, *torch.linspace(-3, 5, 60).tolist()]
    loss, theta = _quadratic(spectrum, seed=1)
    for seed in range(3):  # different start vectors agree
        top = largest_eigenvalue(loss, [theta], 62, torch.Generator().manual_seed(seed), tolerance=1e-6)
        assert top.converged and top.value == pytest.approx(10.0, rel=2e-4)


def test_a_non_finite_hessian_gives_an_unconverged_nan_not_an_error() -> None:
    theta = torch.ones(3, dtype=torch.float64, requires_grad=True)
    top = largest_eigenvalue(0.5 * (theta * torch.tensor([1.0, math.inf, 2.0])) @ theta, [theta], 10)
    assert not top.converged and math.isnan(top.value) and top.products == 1


def test_a_budget_too_small_is_reported_unconverged_not_as_a_value() -> None:
    loss, theta = _quadratic([1.0 + 0.01 * k for k in range(200)])  # a slowly converging, crowded top
    top = largest_eigenvalue(loss, [theta], 3, torch.Generator().manual_seed(0), tolerance=1e-6)
    assert not top.converged and top.residual > 1e-6 and top.products == 4
    net = nn.Sequential(nn.Linear(6, 32), nn.Tanh(), nn.Linear(32, 3)).double()
    x, y = torch.randn(16, 6, dtype=torch.float64), torch.randint(0, 3, (16,))
    probe = SharpnessInstrument(1, iterations=2, batch_size=16, tolerance=1e-9)
    probe.probe = (x, y)
    keys, values = probe.measure(net, torch.optim.SGD(net.parameters(), lr=0.1), lr=0.1)
    got = dict(zip(keys, [float(v) for v in values], strict=True))
    assert got["sharpness/converged"] == 0.0 and "sharpness/estimate" in got
    assert "sharpness/lambda_max" not in got and "sharpness/stability" not in got  # never logged as λ_max


def _mlp() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()


def _full_hessian(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, list[nn.Parameter]]:
    names = [n for n, _ in net.named_parameters()]
    params = [p.detach() for p in net.parameters()]
    shapes = [p.shape for p in params]
    sizes = [p.numel() for p in params]

    def loss(flat: torch.Tensor) -> torch.Tensor:
        parts = [c.reshape(s) for c, s in zip(flat.split(sizes), shapes, strict=True)]
        return F.cross_entropy(functional_call(net, dict(zip(names, parts, strict=True)), (x,)), y)

    flat = torch.cat([p.reshape(-1) for p in params])
    return torch.autograd.functional.hessian(loss, flat), list(net.parameters())


def test_two_layer_mlp_matches_the_full_hessian() -> None:
    net = _mlp()
    torch.manual_seed(4)
    x, y = torch.randn(20, 4, dtype=torch.float64), torch.randint(0, 3, (20,))
    hessian, _ = _full_hessian(net, x, y)
    expected = float(torch.linalg.eigvalsh(hessian)[-1])
    probe = SharpnessInstrument(1, iterations=150, batch_size=20, tolerance=1e-7)
    probe.probe = (x, y)
    keys, values = probe.measure(net, torch.optim.SGD(net.parameters(), lr=0.1), lr=0.1)
    got = dict(zip(keys, [float(v) for v in values], strict=True))
    assert got["sharpness/lambda_max"] == pytest.approx(expected, rel=1e-5) and got["sharpness/converged"] == 1.0
    assert got["sharpness/two_over_lr"] == pytest.approx(20.0)
    assert got["sharpness/stability"] == pytest.approx(expected * 0.1 / 2, rel=1e-5)


def test_adam_preconditioned_sharpness_matches_p_inverse_h() -> None:
    net = _mlp()
    torch.manual_seed(5)
    x, y = torch.randn(20, 4, dtype=torch.float64), torch.randint(0, 3, (20,))
    adam = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(3):
        adam.zero_grad()
        F.cross_entropy(net(x), y).backward()
        adam.step()
    hessian, params = _full_hessian(net, x, y)
    diag, beta1 = adam_preconditioner(adam, params)
    d = torch.cat([t.reshape(-1) for t in diag]).rsqrt()
    expected = float(torch.linalg.eigvalsh(d[:, None] * hessian * d[None, :])[-1])
    probe = SharpnessInstrument(1, iterations=200, batch_size=20, tolerance=1e-7)
    probe.probe = (x, y)
    keys, values = probe.measure(net, adam, lr=1e-2)
    got = dict(zip(keys, [float(v) for v in values], strict=True))
    threshold = (2 + 2 * beta1) / ((1 - beta1) * 1e-2)
    assert got["sharpness/preconditioned"] == pytest.approx(expected, rel=1e-4)
    assert got["sharpness/threshold"] == pytest.approx(threshold)
    assert got["sharpness/stability"] == pytest.approx(expected / threshold, rel=1e-4)


def test_probes_with_dropout_and_batch_norm_repeat_and_leave_no_trace() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 4))
    x, y = torch.randn(32, 8), torch.randint(0, 4, (32,))
    probe = SharpnessInstrument(1, iterations=30, batch_size=32)
    probe.probe = (x, y)
    sgd = torch.optim.SGD(net.parameters(), lr=0.1)
    running = [b.clone() for b in net.buffers()]
    rng = torch.get_rng_state()
    net.eval()  # the probe runs in train mode and gives the mode back
    first = dict(zip(*probe.measure(net, sgd, 0.1), strict=True))
    second = dict(zip(*probe.measure(net, sgd, 0.1), strict=True))
    assert first == second
    first = [float(first["sharpness/estimate"])]
    assert all(torch.equal(a, b) for a, b in zip(running, net.buffers(), strict=True))  # BN statistics restored
    assert torch.equal(rng, torch.get_rng_state())  # the training's random stream untouched
    assert not net.training
    eval_lam, _, _ = top_eigenvalue(F.cross_entropy(net(x), y), list(net.parameters()), 30,
                                 torch.Generator().manual_seed(0))
    assert abs(float(eval_lam) - first[0]) > 1e-3 * abs(first[0])  # train mode (dropout, batch stats) differs


def _case(name: str):  # noqa: ANN202
    return next(c for c in ZOO if c.name == name)


@pytest.mark.slow  # two training runs with power iterations: 42 s loaded
def test_unstable_fires_past_two_over_lr_not_on_a_run_that_trains() -> None:
    """LeNet-5 at SGD lr 20 (2/η = 0.1, λ_max ≈ 1) against the default LeNet-5 (lr 0.05, 2/η = 40)."""
    settings = {"sharpness_every_n_steps": 4, "sharpness_iterations": 30, "unstable_patience": 9,
                "on_divergence": "continue"}
    hot = run_case(_case("lenet5-sgd-lr-too-high"), **settings)
    calm = run_case(_case("lenet5-mnist5k"), **settings)
    unstable = [e for e in hot.events if e.kind == "unstable"]
    assert unstable and unstable[0].step == 8 and unstable[0].since == 0  # the third probe in a row
    stability = hot.logger.history("sharpness/stability")
    assert all(stability[s] > 1 for s in (0, 4, 8))  # later the saturated tanh units flatten the loss
    assert hot.verdict == "unstable"  # before the loss diverges (step 11): sharpness says why
    assert "divergence" in {e.kind for e in hot.events}
    assert max(calm.logger.history("sharpness/stability").values()) < 1
    assert "unstable" not in {e.kind for e in calm.events} and calm.verdict == "healthy"
    assert all(v == pytest.approx(40.0) for v in calm.logger.history("sharpness/two_over_lr").values())




def test_one_network_one_batch_different_probe_seeds_agree() -> None:
    """A batch-normed residual-free CNN in train mode (the hard case for the old fixed-count power iteration):
    three start vectors, three converged values within a few percent of each other."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                        nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 64, 10))
    x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 10, (32,))
    values = []
    for seed in range(3):
        probe = SharpnessInstrument(1, iterations=80, batch_size=32, seed=seed, tolerance=1e-3)
        probe.probe = (x, y)
        got = dict(zip(*probe.measure(net, torch.optim.SGD(net.parameters(), lr=0.1), 0.1), strict=True))
        assert float(got["sharpness/converged"]) == 1.0, got
        values.append(float(got["sharpness/lambda_max"]))
    assert max(values) / min(values) < 1.03, values
