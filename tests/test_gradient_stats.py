"""Gradient statistics: layers in execution order, the on-device collector, the scale-free forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from src.models import lenet5, mlp, resnet152, vgg19
from src.monitor.collector import GradStatsCollector
from src.monitor.layers import ForwardOrder, find_layers
from src.monitor.stats import summarize


def forward_order(net: nn.Module, x: torch.Tensor) -> list[str]:
    names = [n for n, p in net.named_parameters() if p.requires_grad]
    order = ForwardOrder(net, names)
    order.start()
    net(x)
    return [layer.name for layer in find_layers(net, names, order.stop())]


def called_in_order(net: nn.Module, x: torch.Tensor) -> list[str]:
    """The test's own record: the conv/linear modules in the order their forward ran (forward hooks)."""
    seen: list[str] = []
    handles = [m.register_forward_hook(lambda mod, i, o, name=n: seen.append(name))
               for n, m in net.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    net(x)
    for h in handles:
        h.remove()
    return list(dict.fromkeys(seen))


@pytest.mark.parametrize("build, shape", [
    (lambda: lenet5(), (2, 1, 32, 32)),
    (lambda: mlp(in_channels=1, image_size=8, depth=3, width=8), (2, 1, 8, 8)),
    (lambda: vgg19(width=0.0625), (2, 3, 32, 32)),
    (lambda: resnet152(width=0.0625), (2, 3, 16, 16)),
], ids=["lenet5", "mlp", "vgg19", "resnet152"])
def test_layer_order_is_execution_order_for_the_four_models(build, shape) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    net = build()
    x = torch.randn(*shape)
    assert forward_order(net, x) == called_in_order(net, x)


class RegisteredBackwards(nn.Module):
    """Registers its head before its body: registration order is not execution order."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(4, 3)
        self.unused = nn.Linear(4, 4)  # never called: no gradient
        self.body = nn.Linear(5, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.body(x)))


def test_layers_follow_the_forward_pass_not_registration_and_uncalled_ones_come_last() -> None:
    net = RegisteredBackwards()
    assert forward_order(net, torch.randn(2, 5)) == ["body", "head", "unused"]
    names = [n for n, _ in net.named_parameters()]
    assert [layer.name for layer in find_layers(net, names)] == ["head", "unused", "body"]  # registration
    labels = [layer.label for layer in find_layers(net, names, ["body", "head"])]
    assert labels == ["00.body", "01.head", "02.unused"]


def test_collector_matches_direct_norms_counts_nonfinite_values_and_marks_missing_gradients() -> None:
    torch.manual_seed(0)
    net = RegisteredBackwards()
    net(torch.randn(5, 5)).logsumexp(1).sum().backward()
    params = dict(net.named_parameters())
    params["body.weight"].grad.view(-1)[:3] = float("nan")  # 3 NaN values
    params["head.bias"].grad.view(-1)[0] = float("inf")  # 1 Inf
    for count_values, expected in ((True, 4.0), (False, 2.0)):
        collector = GradStatsCollector(net, capacity=2, count_values=count_values)
        collector.collect(7, torch.tensor(1.5))
        block = collector.read()
        assert block.steps.tolist() == [7] and block.loss.tolist() == [1.5] and block.has_loss.tolist() == [True]
        assert block.nonfinite.sum() == expected
        names = collector.param_names
        for i, name in enumerate(names):
            p = params[name]
            if p.grad is None:
                assert block.missing[0, i] and block.grad[0, i] == 0  # `unused`: no gradient, not a small one
                continue
            want = float(p.grad.norm())
            got = block.grad[0, i]
            assert (math.isnan(got) and math.isnan(want)) or got == want or got == pytest.approx(want)
            assert block.weight[0, i] == pytest.approx(float(p.detach().norm()))
        assert block.penalty is None and collector.pending == 0


def test_rms_and_relative_forms_and_the_depth_profile_on_known_values() -> None:
    net = nn.Sequential(*[nn.Linear(3, 3, bias=False) for _ in range(4)])
    collector = GradStatsCollector(net, capacity=1)
    with torch.no_grad():
        for i, p in enumerate(net.parameters()):
            p.fill_(2.0 / 3.0)  # ‖θ‖ = 2 for every layer (9 entries)
            p.grad = torch.full_like(p, 10.0**i / 3.0)  # ‖g‖ = 10^i: one decade a layer toward the output
    collector.collect(0, None)
    names = collector.param_names
    layers = find_layers(net, names)
    block = collector.read()
    summary = summarize(block, layers, [layer.label for layer in layers], collector.sizes)
    np.testing.assert_allclose(summary.layer_norm[0], [1, 10, 100, 1000], rtol=1e-6)
    np.testing.assert_allclose(summary.layer_rms[0], np.array([1, 10, 100, 1000]) / 3.0, rtol=1e-6)
    np.testing.assert_allclose(summary.layer_rel[0], np.array([1, 10, 100, 1000]) / 2.0, rtol=1e-6)
    assert summary.first_last_ratio[0] == pytest.approx(1e-3)
    assert summary.depth_slope[0] == pytest.approx(1.0)
    assert summary.global_norm[0] == pytest.approx(math.sqrt(sum(100.0**i for i in range(4))))
    assert summary.global_rel[0] == pytest.approx(summary.global_norm[0] / 4.0)  # ‖θ‖ over all = √(4·4)
    assert not summary.has_loss[0] and summary.nonfinite[0] == 0 and not summary.skipped[0]


def test_a_norm_that_overflows_float32_with_finite_values_is_told_apart() -> None:
    net = nn.Sequential(nn.Linear(2, 2, bias=False), nn.Linear(2, 2, bias=False))
    net[0].weight.grad = torch.full((2, 2), 3e38)  # finite values, their sum of squares is not
    net[1].weight.grad = torch.zeros(2, 2)
    collector = GradStatsCollector(net, capacity=1, count_values=True)
    collector.collect(0, torch.tensor(1.0))
    layers = find_layers(net, collector.param_names)
    summary = summarize(collector.read(), layers, [x.label for x in layers], collector.sizes)
    assert summary.nonfinite[0] == 0 and summary.norm_overflow[0]
    assert summary.nonfinite_layer[0] == layers[0].label
