"""Gradient statistics: the layer definition, the on-device collector, and what reaches MLflow."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from src.models import lenet5, mlp
from src.monitor.grad_stats import GradStatsCollector, RelativeUpdateTracker, find_layers, summarize
from tests import gradient_probes
from tests.conftest import FAST
from tests.mlflow_reads import only_run

SMALL_MLP = ["model=mlp", "model.depth=3", "model.width=16", "data=synthetic", "data.num_samples=256",
             "data.in_channels=1", "data.image_size=8"]


def test_layers_are_conv_and_linear_weights_in_forward_order() -> None:
    net = lenet5()
    names = [n for n, _ in net.named_parameters()]
    layers = find_layers(net, names)
    expected = ["features.0", "features.3", "features.6", "classifier.1", "classifier.3"]
    assert [layer.name for layer in layers] == expected
    assert [layer.label for layer in layers][:2] == ["00.features.0", "01.features.3"]
    assert all(names[layer.param_index] == f"{layer.name}.weight" for layer in layers)


def test_collector_matches_direct_norms_and_counts_nonfinite_values() -> None:
    torch.manual_seed(0)
    net = mlp(in_channels=1, image_size=4, depth=2, width=8)
    net(torch.randn(5, 1, 4, 4)).logsumexp(1).sum().backward()
    params = list(net.parameters())
    params[0].grad.view(-1)[:3] = float("nan")  # first layer weight: 3 NaN values
    params[3].grad.view(-1)[0] = float("inf")  # second layer bias: 1 Inf
    for count_values, expected in ((True, 4.0), (False, 2.0)):
        collector = GradStatsCollector(net, capacity=2, count_values=count_values)
        collector.collect(7, torch.tensor(1.5), with_weights=True)
        block = collector.read()
        assert block.steps.tolist() == [7] and block.loss.tolist() == [1.5]
        assert block.nonfinite_per_param.sum() == expected
        direct = [float(p.grad.detach().norm()) for p in params]
        for got, want in zip(block.param_grad_norms[0], direct, strict=True):
            assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want) or got == want
        weights = [float(params[layer.param_index].detach().norm()) for layer in collector.layers]
        assert block.weight_norms[0] == pytest.approx(weights)
        assert collector.pending == 0


def test_summary_slope_ratio_and_global_norm() -> None:
    net = nn.Sequential(*[nn.Linear(3, 3, bias=False) for _ in range(4)])
    collector = GradStatsCollector(net, capacity=1)
    for i, p in enumerate(net.parameters()):
        p.grad = torch.full_like(p, 10.0**i / 3.0)  # norm 10^i: one decade a layer, growing to the output
    collector.collect(0, None)
    stats = summarize(collector.read(), collector.layers)
    assert stats["depth_slope"][0] == pytest.approx(1.0)
    assert stats["first_last_ratio"][0] == pytest.approx(1e-3)
    assert stats["global_norm"][0] == pytest.approx(math.sqrt(sum(100.0**i for i in range(4))))
    assert stats["nonfinite"][0] == 0


def test_relative_update_is_step_norm_over_weight_norm() -> None:
    w = nn.Parameter(torch.ones(2, 2))
    tracker = RelativeUpdateTracker([w])
    tracker.snapshot(3)
    with torch.no_grad():
        w.add_(torch.tensor([[0.3, 0.4], [0.0, 0.0]]))  # ‖Δ‖ = 0.5, ‖θ‖ = 2
    tracker.finish()
    [(step, ratio)] = tracker.read()
    assert step == 3 and ratio.tolist() == pytest.approx([0.25])


def test_logged_layer_norms_equal_direct_grad_norms(run_cli, mlflow_client) -> None:
    """The real entry point on a small MLP: every logged per-layer value equals `p.grad.norm()` of that step."""
    gradient_probes.RECORDS.clear()
    code = run_cli(*SMALL_MLP, *FAST, "+callbacks.recorder._target_=tests.gradient_probes.GradNormRecorder")
    assert code == 0
    records = gradient_probes.RECORDS
    assert [r["step"] for r in records] == [0, 1, 2, 3]  # FAST: 4 steps, logged every step
    run = only_run(mlflow_client)
    labels = [f"{i:02d}.{name}" for i, name in enumerate(records[0]["layers"])]
    assert labels == ["00.layers.1", "01.layers.3", "02.layers.5", "03.layers.7"]

    def history(key: str) -> dict[int, float]:
        return {m.step: m.value for m in mlflow_client.get_metric_history(run.info.run_id, key)}

    for i, label in enumerate(labels):
        grads, weights = history(f"grad_norm/{label}"), history(f"weight_norm/{label}")
        assert sorted(grads) == [0, 1, 2, 3]
        for r in records:
            assert grads[r["step"]] == pytest.approx(r["grad"][i], rel=1e-5)
            assert weights[r["step"]] == pytest.approx(r["weight"][i], rel=1e-5)
    global_norm = history("grad/global_norm")
    assert [global_norm[r["step"]] for r in records] == pytest.approx([r["global"] for r in records], rel=1e-5)
    ratio = history("grad/first_last_ratio")
    assert [ratio[r["step"]] for r in records] == pytest.approx([r["grad"][0] / r["grad"][-1] for r in records])
    slopes = [np.polyfit(np.arange(4), np.log10(r["grad"]), 1)[0] for r in records]
    assert [history("grad/depth_slope")[r["step"]] for r in records] == pytest.approx(slopes, rel=1e-4)
    assert set(history("grad/nonfinite").values()) == {0.0}
    assert set(history("rel_update/00.layers.1")) == {0}  # every 100 steps: only step 0 in a 4-step run
    plots = {a.path for a in mlflow_client.list_artifacts(run.info.run_id, "plots")}
    assert plots == {"plots/gradient_flow_heatmap.png", "plots/gradient_flow_lines.png"}
    assert run.data.tags["health.events"] == "none" and run.data.tags["outcome"] == "completed"
