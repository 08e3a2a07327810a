"""Health events: the detector's rules on hand-made rows, and runs forced to NaN at a known step."""

from __future__ import annotations

import json
import math
import re

import pytest

from src.config.validation import ConfigError, validate
from src.monitor.events import EventDetector, HealthEvent, Thresholds
from tests.conftest import FAST
from tests.mlflow_reads import metric_values, only_run, run_events

LABELS = ["00.a", "01.b", "02.c"]


def detector(**limits: float) -> EventDetector:
    return EventDetector(Thresholds(**limits), LABELS, ["00.a", "00.a", "01.b", "norm.weight", "02.c"])


def healthy(d: EventDetector, step: int, loss: float = 1.0, ratio: float = 0.5, norms=(0.1, 0.2, 0.3)):
    return d.update(step, loss, 1.0, [0] * 5, list(norms), ratio)


def test_vanishing_needs_k_consecutive_steps_and_fires_once() -> None:
    d = detector(vanishing_patience=3)
    assert healthy(d, 0, ratio=1e-9) + healthy(d, 1, ratio=1e-9) == []
    assert healthy(d, 2, ratio=0.5) == []  # the run of small ratios is broken: counting restarts
    fired = [e for s in range(3, 9) for e in healthy(d, s, ratio=1e-9)]
    assert [(e.step, e.kind, e.source, e.layer) for e in fired] == [(5, "vanishing", "first_last_ratio", "00.a")]
    assert d.counts["vanishing"] == 1


def test_vanishing_layer_norm_names_the_first_small_layer() -> None:
    d = detector(vanishing_patience=2)
    events = [e for s in range(2) for e in healthy(d, s, norms=(0.1, 1e-12, 1e-13))]
    assert [(e.step, e.layer, e.value) for e in events] == [(1, "01.b", 1e-12)]


def test_exploding_on_loss_and_global_norm_limits() -> None:
    d = detector(max_loss=100.0, max_grad_norm=10.0)
    assert d.update(0, 50.0, 5.0, [0] * 5, [0.1] * 3, 0.5) == []
    events = d.update(1, 200.0, 20.0, [0] * 5, [0.1] * 3, 0.5)
    assert {(e.source, e.value, e.threshold) for e in events} == {("loss", 200.0, 100.0), ("global_norm", 20.0, 10.0)}


def test_divergence_is_a_spike_against_the_running_mean_above_the_floor() -> None:
    d = detector(divergence_window=5, divergence_factor=10.0, divergence_min_loss=2.5)
    for s in range(5):
        assert healthy(d, s, loss=0.02) == []
    assert healthy(d, 5, loss=0.5) == []  # 25x the mean but below chance level: noise, not divergence
    events = healthy(d, 6, loss=40.0)
    assert [(e.kind, e.step) for e in events] == [("divergence", 6)]
    assert events[0].threshold == pytest.approx(10 * (4 * 0.02 + 0.5) / 5)
    assert healthy(d, 7, loss=45.0) == []  # still diverged: one event per episode


def test_nonfinite_names_first_layer_in_backward_order_and_writes_valid_json() -> None:
    d = detector()
    [event] = d.update(4, float("nan"), float("nan"), [1, 0, 3, 0, 0], [float("nan"), 0.2, float("nan")], 0.5)
    assert (event.kind, event.step, event.layer, event.source, event.value) == ("nonfinite", 4, "01.b",
                                                                                 "loss+gradient", 4.0)
    assert d.update(5, float("nan"), float("nan"), [1, 0, 3, 0, 0], [0.1] * 3, 0.5) == []  # same episode
    line = json.loads(d.jsonl())
    assert line == {"step": 4, "kind": "nonfinite", "value": 4.0, "threshold": 0.0, "layer": "01.b",
                    "source": "loss+gradient"}
    assert json.loads(HealthEvent(1, "exploding", math.inf, 1.0).to_json())["value"] == "inf"
    assert d.summary() == "nonfinite:1"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("monitor.on_nonfinite=halt",
         "monitor.on_nonfinite='halt' is not allowed; it must be one of ['stop', 'continue']"),
        ("monitor.max_loss=-1", "monitor.max_loss=-1 is not allowed; it must be a number > 0"),
        ("monitor.vanishing_patience=0", "monitor.vanishing_patience=0 is not allowed; it must be an integer >= 1"),
        ("monitor.nonfinite_count=some",
         "monitor.nonfinite_count='some' is not allowed; it must be one of ['tensors', 'values']"),
        ("+monitor.max_los=3", "monitor.max_los is not a setting of GradientHealthMonitor (did you mean 'max_loss'?)"),
        ("monitor.divergence_factor=1", "monitor.divergence_factor=1 is not allowed; it must be a number > 1"),
    ],
)
def test_bad_monitor_settings_fail_validation_naming_the_key(compose, override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate(compose(override))


def test_monitor_off_builds_no_monitor(compose) -> None:
    from src.monitor import GradientHealthMonitor
    from src.training.builders import build_callbacks

    assert build_callbacks(compose("monitor=off", "~callbacks")) == []
    [monitor] = build_callbacks(compose("~callbacks", "trainer.log_every_n_steps=7"))
    assert isinstance(monitor, GradientHealthMonitor) and monitor.every_n_steps == 7


POISON = ["+callbacks.poison._target_=tests.gradient_probes.PoisonGradient", "+callbacks.poison.step=2",
          "+callbacks.poison.modules=[layers.1,layers.3]"]
NAN_RUN = ["model=mlp", "model.depth=3", "model.width=16", "data=synthetic", "data.num_samples=256",
           "data.in_channels=1", "data.image_size=8", "trainer.limit_train_batches=6",
           *[o for o in FAST if not o.startswith("trainer.limit_train_batches")]]


@pytest.mark.parametrize("policy", ["stop", "continue"])
def test_run_forced_to_nan_is_recorded_at_its_step_and_marked_diverged(run_cli, mlflow_client, policy: str) -> None:
    """NaN written into two layers' gradients at step 2: the event names step 2 and the deeper layer."""
    test_after = "false" if policy == "stop" else "true"  # the continue run also exercises the test phase
    policy_args = [f"monitor.on_nonfinite={policy}", f"monitor.test_after_divergence={test_after}"]
    assert run_cli(*NAN_RUN, *POISON, *policy_args) == 0
    run = only_run(mlflow_client)
    run_id = run.info.run_id
    assert run.info.status == "FINISHED"  # terminal, and everything logged so far is there
    assert run.data.tags["outcome"] == "diverged"
    assert run.data.tags["health.first_event_step"] == "2"
    assert run.data.tags["health.events"].startswith("nonfinite:1")
    events = run_events(mlflow_client, run_id)
    first = events[0]
    assert (first["kind"], first["step"], first["layer"]) == ("nonfinite", 2, "01.layers.3")
    metrics = metric_values(mlflow_client, run_id)
    for key, values in metrics.items():  # non-finite values never reach MLflow
        assert all(math.isfinite(v) for _, v in values), key
    steps = [s for s, _ in metrics["grad/global_norm"]]
    assert steps == [0, 1]  # step 2's global norm is NaN: counted, never sent
    assert dict(metrics["grad/nonfinite"])[2] == 2.0  # two poisoned gradient tensors at step 2
    nonfinite_steps = [s for s, _ in metrics["grad/nonfinite"]]
    if policy == "stop":
        assert max(nonfinite_steps) == 2  # stopped right after the step that went NaN
        assert "test/acc" not in metrics  # test phase skipped by default after divergence
    else:
        assert max(nonfinite_steps) == 5  # all 6 steps ran, NaN from step 2 on
        assert dict(metrics["grad/nonfinite"])[5] > 2  # NaN weights: every gradient is NaN
        assert [s for s, _ in metrics["train/loss"]] == [0, 1, 2]  # NaN losses from step 3 were dropped
        assert "test/acc" in metrics and "test/loss" not in metrics  # tested as asked; its NaN loss dropped
    assert dict(metrics["events/nonfinite"])[2] == 1.0
    plots = {a.path for a in mlflow_client.list_artifacts(run_id, "plots")}
    assert plots == {"plots/gradient_flow_heatmap.png", "plots/gradient_flow_lines.png"}
