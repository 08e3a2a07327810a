"""The back-propagated signal and unit health: equal to a hand-registered hook's ∂L/∂z, a deep linear net's
ratio equal to the product of its layers' factors, a net whose ReLUs are all off dead with no signal below,
saturated tanh units counted, and hooks attached only on scheduled steps."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from src.monitor.instruments import SignalInstrument, UnitHealthInstrument
from src.monitor.layers import candidate_layers
from tests.zoo import ZOO, dead_relu_mlp, run_case


def drive(instrument, net: nn.Module, x: torch.Tensor, y: torch.Tensor, step: int = 0) -> dict[str, float]:  # noqa: ANN001
    """One step by hand: hooks on, forward, data loss, backward, hooks off; the sample (labels `NN.<name>`, or the
    name itself where it is a Sequential's index already)."""
    names = [n for n, _ in candidate_layers(net, [n for n, _ in net.named_parameters()])]
    instrument.bind(net, names)
    instrument.before_forward(step, None, None, (x, y))
    F.cross_entropy(net(x), y).backward()
    instrument.after_backward(step, None, None, None)
    assert not instrument.handles, "hooks stay attached after the step"
    samples = instrument.read({n: n if n[0].isdigit() else f"{i:02d}.{n}" for i, n in enumerate(names)})
    return samples[0][1] if samples else {}


def test_signal_equals_a_hand_registered_hook() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 3))
    captured = {}

    def keep(name):  # noqa: ANN001, ANN202
        def hook(module, args, out) -> None:  # noqa: ANN001
            out.retain_grad()
            captured[name] = out
        return hook

    for name in ("0", "2", "4"):
        net.get_submodule(name).register_forward_hook(keep(name))
    x, y = torch.randn(5, 8), torch.randint(0, 3, (5,))
    sample = drive(SignalInstrument(1), net, x, y)
    for name in ("0", "2", "4"):
        grad = captured[name].grad
        assert sample[f"signal/{name}"] == pytest.approx(float(grad.pow(2).mean().sqrt()), rel=1e-6)
    expected = float(captured["0"].grad.pow(2).mean().sqrt() / captured["4"].grad.pow(2).mean().sqrt())
    assert sample["signal/first_last_ratio"] == pytest.approx(expected, rel=1e-6)


def test_deep_linear_net_ratio_is_the_product_of_the_layer_factors() -> None:
    """W_l = c_l·Q_l with Q_l orthogonal: δ_{l-1} = W_lᵀδ_l has norm c_l‖δ_l‖, so first/last = c_2⋯c_L."""
    torch.manual_seed(1)
    factors = [1.0, 0.5, 2.0, 0.1, 0.3, 1.5]
    layers = []
    for c in factors:
        layer = nn.Linear(10, 10, bias=False)
        q, _ = torch.linalg.qr(torch.randn(10, 10))
        layer.weight.data.copy_(c * q)
        layers.append(layer)
    net = nn.Sequential(*layers)
    sample = drive(SignalInstrument(1), net, torch.randn(7, 10), torch.randint(0, 10, (7,)))
    assert sample["signal/first_last_ratio"] == pytest.approx(math.prod(factors[1:]), rel=1e-4)
    for i in range(len(factors) - 1):  # each layer's signal is its successor's times that layer's factor
        assert sample[f"signal/{i}"] == pytest.approx(factors[i + 1] * sample[f"signal/{i + 1}"], rel=1e-4)


def test_all_relus_off_is_dead_with_zero_signal_below() -> None:
    torch.manual_seed(0)
    net = dead_relu_mlp()
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
    units = drive(UnitHealthInstrument(1), net, x, y)
    net.zero_grad()
    signal = drive(SignalInstrument(1), net, x, y)
    names = [n for n, _ in candidate_layers(net, [n for n, _ in net.named_parameters()])]  # forward order
    layers = [f"{i:02d}.{n}" for i, n in enumerate(names)]
    dead = {k: v for k, v in units.items() if k.startswith("dead/") and k != "dead/max"}
    assert len(dead) == len(layers) - 1 and all(v == 1.0 for v in dead.values()), dead
    assert units["dead/max"] == 1.0
    assert all(signal[f"signal/{n}"] == 0.0 for n in layers[:-1])  # every layer below a dead ReLU
    assert signal[f"signal/{layers[-1]}"] > 0  # the output layer still gets the loss's gradient
    assert signal["signal/first_last_ratio"] == 0.0


def test_saturated_tanh_units_are_counted() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(32, 20), torch.randint(0, 4, (32,))
    small = nn.Sequential(nn.Linear(20, 50), nn.Tanh(), nn.Linear(50, 4))
    large = nn.Sequential(nn.Linear(20, 50), nn.Tanh(), nn.Linear(50, 4))
    nn.init.normal_(small[0].weight, std=0.01)
    nn.init.normal_(large[0].weight, std=10.0)
    low, high = drive(UnitHealthInstrument(1), small, x, y), drive(UnitHealthInstrument(1), large, x, y)
    z = large[0](x).detach()
    expected = float((1 - torch.tanh(z) ** 2 < 0.01).float().mean())
    assert low["saturated/0"] == 0.0
    assert high["saturated/0"] == pytest.approx(expected) and expected > 0.8
    assert high["act_rms/0"] == pytest.approx(float(z.pow(2).mean().sqrt()), rel=1e-5)


def test_hooks_only_on_scheduled_steps() -> None:
    net = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    for instrument in (SignalInstrument(10), UnitHealthInstrument(10)):
        instrument.bind(net, ["0", "2"])
        instrument.before_forward(3, None, None, None)
        assert not instrument.handles and not net[0]._forward_hooks
        instrument.before_forward(10, None, None, None)
        assert instrument.handles
        instrument.after_backward(10, None, None, None)
        assert not instrument.handles and not net[0]._forward_hooks


def _case(name: str):  # noqa: ANN202
    return next(c for c in ZOO if c.name == name)


def test_dead_units_fires_on_a_dead_net_not_on_one_that_trains() -> None:
    dead, healthy = run_case(_case("relu-dead-bias")), run_case(_case("mlp-relu-kaiming"))
    assert dead.verdict == "dead_units" and "stalled" in {e.kind for e in dead.events}
    assert healthy.verdict == "healthy"
    assert max(healthy.logger.history("dead/max").values()) < 0.5
    assert set(dead.logger.history("dead/max").values()) == {1.0}
    assert dead.logger.history("events/dead_units") and not healthy.logger.history("events/dead_units")


def test_vanishing_signal_fires_where_the_weight_gradient_hides_it() -> None:
    """Signal-ratio vanishing alone (weight-gradient vanishing switched off by an unreachable limit)."""
    tanh = run_case(_case("tanh-12-tiny-init"), vanishing_rel=1e-30)
    healthy = run_case(_case("mlp-relu-kaiming"), vanishing_rel=1e-30)
    sources = [(e.kind, e.source) for e in tanh.events]
    assert ("vanishing", "signal_ratio") in sources, sources
    assert max(tanh.logger.history("signal/first_last_ratio").values()) < 1e-10
    assert min(healthy.logger.history("signal/first_last_ratio").values()) > 1e-2
    assert healthy.verdict == "healthy"
