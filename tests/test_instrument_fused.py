"""The instruments' fused reductions keep their meaning: under fp16 the signal is divided by the scale the
step's gradients carried (a device copy of the GradScaler's scale, read at the flush), a layer called twice
gets one RMS over both calls, sigmoid saturation matches its derivative, and a due step keeps one device row."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from src.monitor.instruments import SignalInstrument, UnitHealthInstrument


def fp16_trainer(scale: float) -> SimpleNamespace:
    return SimpleNamespace(precision_plugin=SimpleNamespace(scaler=torch.amp.GradScaler("cpu", init_scale=scale)))


def step(instrument, net: nn.Module, names: list[str], loss_fn, trainer=None) -> dict[str, float]:  # noqa: ANN001
    instrument.bind(net, names)
    instrument.before_forward(0, trainer, None, None)
    loss_fn().backward()
    instrument.after_backward(0, trainer, None, None)
    assert len(instrument.rows) == 1  # one stacked device row for the whole step
    return instrument.read({n: n for n in names})[0][1]


def test_fp16_signal_is_divided_by_the_scale_of_its_step() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 10), nn.Tanh(), nn.Linear(10, 3))
    x, y = torch.randn(7, 6), torch.randint(0, 3, (7,))
    plain = step(SignalInstrument(1), net, ["0", "2"], lambda: F.cross_entropy(net(x), y))
    trainer = fp16_trainer(1024.0)
    scaler = trainer.precision_plugin.scaler
    instrument = SignalInstrument(1)
    instrument.bind(net, ["0", "2"])
    instrument.before_forward(0, trainer, None, None)
    scaler.scale(F.cross_entropy(net(x), y)).backward()  # as Lightning's 16-mixed plugin does
    instrument.after_backward(0, trainer, None, None)
    scaler.update(512.0)  # the scale changes before the flush reads the row
    scaled = instrument.read({"0": "0", "2": "2"})[0][1]
    for name in ("0", "2"):
        assert scaled[f"signal/{name}"] == pytest.approx(plain[f"signal/{name}"], rel=1e-5)


def test_a_layer_called_twice_gets_one_rms_over_both_calls() -> None:
    torch.manual_seed(1)
    layer = nn.Linear(4, 4)
    net = nn.Sequential(layer)
    x1, x2 = torch.randn(3, 4), torch.randn(5, 4)
    outs = []
    layer.register_forward_hook(lambda m, a, out: out.retain_grad() or outs.append(out))
    sample = step(SignalInstrument(1), net, ["0"], lambda: net(x1).square().sum() + net(x2).sum())
    grads = torch.cat([o.grad.flatten() for o in outs])
    assert sample["signal/0"] == pytest.approx(float(grads.square().mean().sqrt()), rel=1e-6)


@pytest.mark.parametrize("activation", [nn.Sigmoid(), nn.Tanh()], ids=["sigmoid", "tanh"])
def test_saturation_matches_the_derivative_below_the_limit(activation: nn.Module) -> None:
    torch.manual_seed(2)
    net = nn.Sequential(nn.Linear(5, 64), activation, nn.Linear(64, 2))
    x = torch.randn(32, 5) * 4
    sample = step(UnitHealthInstrument(1, saturation_limit=0.05), net, ["0", "2"],
                  lambda: net(x).sum())
    y = activation(net[0](x)).detach()
    slope, top = (1 - y * y, 1.0) if isinstance(activation, nn.Tanh) else (y * (1 - y), 0.25)
    expected = float((slope < 0.05 * top).float().mean())
    assert 0.05 < expected < 0.95
    assert sample["saturated/0"] == pytest.approx(expected, abs=1e-6)
    z = net[0](x).detach()
    assert sample["act_rms/0"] == pytest.approx(float(z.square().mean().sqrt()), rel=1e-5)
