"""Health events: each detector on hand-made steps (a case built to fire beside one that must not), the
event log and verdict, the settings' validation, and real runs forced to NaN at a known step."""

from __future__ import annotations

import json
import math
import re

import pytest

from src.config.validation import validate
from src.monitor.detectors import DETECTORS, KINDS, default_detectors
from src.monitor.detectors.divergence import DivergenceDetector
from src.monitor.detectors.exploding import ExplodingDetector
from src.monitor.detectors.nonfinite import NonfiniteDetector
from src.monitor.detectors.stalled import StalledDetector
from src.monitor.detectors.vanishing import VanishingDetector
from src.monitor.events import EventLog, HealthEvent
from src.monitor.thresholds import Thresholds
from src.settings import ConfigError
from tests.conftest import FAST
from tests.mlflow_reads import metric_values, only_run, run_events
from tests.step_views import LN10, fired, view


def test_vanishing_is_a_sustained_decay_toward_the_input_not_a_growing_last_layer() -> None:
    t = Thresholds(vanishing_patience=3)
    decayed = [view(s, first_rel=1e-12, last_rel=1e-2) for s in range(6)]
    [event] = fired(VanishingDetector(t), decayed)
    assert (event.step, event.since, event.source, event.layer) == (2, 0, "first_rel", "00.a")
    growing_last = [view(s, first_rel=1e-3, last_rel=10.0**s) for s in range(10)]  # ratio falls to 1e-12
    assert fired(VanishingDetector(t), growing_last) == []
    uniform = [view(s, first_rel=1e-12, last_rel=1e-11) for s in range(10)]  # tiny everywhere: not depth
    assert fired(VanishingDetector(t), uniform) == []
    broken = [view(0, first_rel=1e-12), view(1, first_rel=1e-12), view(2), view(3, first_rel=1e-12)]
    assert fired(VanishingDetector(t), broken) == []  # the run was broken: counting restarted
    no_gradient = [view(s, first_rel=math.nan) for s in range(10)]  # the input layer has none: not judged
    assert fired(VanishingDetector(t), no_gradient) == []


def test_stalled_is_chance_level_loss_with_a_tiny_data_gradient_for_k_steps() -> None:
    t = Thresholds(stall_patience=4)
    dead = [view(s, loss=LN10 + 0.01, median_layer_rel=0.0) for s in range(6)]
    [event] = fired(StalledDetector(t), dead)
    assert (event.step, event.since, event.kind) == (3, 0, "stalled")
    at_init = [view(s, loss=LN10, median_layer_rel=3e-2) for s in range(10)]  # chance level, learning
    assert fired(StalledDetector(t), at_init) == []
    converged = [view(s, loss=1e-4, median_layer_rel=0.0) for s in range(10)]  # small gradient, trained
    assert fired(StalledDetector(t), converged) == []
    assert fired(StalledDetector(t), [view(s, loss=LN10, median_layer_rel=0.0, chance_loss=math.nan)
                                      for s in range(10)]) == []  # C unknown: not judged


def test_exploding_needs_the_condition_for_its_patience() -> None:
    t = Thresholds(exploding_patience=3)
    assert fired(ExplodingDetector(t), [view(0, global_rel=1e6), view(1), view(2, loss=1e5), view(3)]) == []
    events = fired(ExplodingDetector(t), [view(s, global_rel=1e3 * 10**s) for s in range(5)])
    assert [(e.step, e.source, e.since) for e in events] == [(2, "global_rel", 0)]
    events = fired(ExplodingDetector(t), [view(s, loss=2e4) for s in range(5)])
    assert [(e.step, e.source, e.value) for e in events] == [(2, "loss", 2e4)]


def test_divergence_fires_on_a_sustained_rise_and_on_a_collapse_to_chance_not_on_noise() -> None:
    t = Thresholds(divergence_warmup=5, divergence_window=5, divergence_patience=3)
    trained = [view(s, loss=0.1) for s in range(10)]
    noise = [view(10 + s, loss=0.02 if s % 2 else 0.6) for s in range(10)]  # single-step spikes, 6x the mean
    d = DivergenceDetector(t)
    assert fired(d, trained + noise) == []
    d = DivergenceDetector(t)
    collapse = [view(10 + s, loss=LN10) for s in range(5)]  # back to chance: 23x the mean, sustained
    events = fired(d, trained + collapse)
    assert [(e.step, e.since) for e in events] == [(12, 10)]
    assert events[0].threshold == pytest.approx(max(3 * 0.1, 0.1 + 0.5))
    d = DivergenceDetector(t)
    early = [view(0, loss=LN10)] + [view(s, loss=LN10 * 100) for s in range(1, 6)]  # warm-up: above its best
    assert [(e.step, e.since) for e in fired(d, early)] == [(3, 1)]
    falling = [view(s, loss=LN10 * 100 / (s + 1)) for s in range(8)]  # an over-confident init: high, falling
    assert fired(DivergenceDetector(t), falling) == []


def test_nonfinite_is_immediate_but_a_grad_scalers_skips_are_not_until_they_persist() -> None:
    t = Thresholds(amp_skip_patience=3)
    events = fired(NonfiniteDetector(t), [view(0), view(1, nonfinite=2.0, nonfinite_layer="01.b"),
                                          view(2, nonfinite=3.0)])
    assert [(e.step, e.source, e.layer) for e in events] == [(1, "gradient", "01.b")]  # one per episode
    routine = [view(s, nonfinite=1.0, skipped=True) if s in (0, 1, 5) else view(s) for s in range(8)]
    assert fired(NonfiniteDetector(t), routine) == []  # a scaler calibrating: skipped, not an event
    persistent = [view(s, nonfinite=5.0, skipped=True) for s in range(5)]
    [event] = fired(NonfiniteDetector(t), persistent)
    assert (event.step, event.source, event.since) == (2, "amp_skips", 0)
    [event] = fired(NonfiniteDetector(t), [view(0, amp_scale=2.0**-3)])
    assert event.source == "amp_scale"
    [event] = fired(NonfiniteDetector(t), [view(0, loss=math.inf, skipped=True, nonfinite=1.0)])
    assert event.source == "loss"  # a non-finite loss is never the scaler's routine
    [event] = fired(NonfiniteDetector(t), [view(0, norm_overflow=True)])
    assert event.source == "norm_overflow"


def test_detector_state_survives_a_round_trip_mid_run() -> None:
    t = Thresholds(vanishing_patience=4, divergence_warmup=2, divergence_window=3)
    steps = [view(s, first_rel=1e-12, last_rel=1e-2, loss=0.5) for s in range(8)]
    whole = [e for d in default_detectors(t) for e in fired(d, steps)]
    first_half = default_detectors(t)
    events = [e for d in first_half for e in fired(d, steps[:2])]
    second_half = default_detectors(t)
    for old, new in zip(first_half, second_half, strict=True):
        new.load_state_dict(json.loads(json.dumps(old.state_dict())))  # plain values only
    events += [e for d in second_half for e in fired(d, steps[2:])]
    assert events == whole and [e.kind for e in whole] == ["vanishing"]


def test_event_log_verdict_tags_and_json() -> None:
    log = EventLog(KINDS)
    assert log.verdict == "healthy" and log.tags() == {"health.verdict": "healthy", "health.events": "none"}
    log.add(HealthEvent(4, "vanishing", 1e-12, 1e-7, "00.a", "first_rel", 0))
    log.add(HealthEvent(9, "nonfinite", math.nan, 0.0, None, "loss", 9))
    assert log.tags() == {"health.verdict": "vanishing", "health.events": "nonfinite:1,vanishing:1",
                          "health.first_event_step": "4"}
    lines = [json.loads(line) for line in log.jsonl().splitlines()]
    assert lines[1] == {"step": 9, "kind": "nonfinite", "value": "nan", "threshold": 0.0, "source": "loss", "since": 9}
    copy = EventLog(KINDS)
    copy.load_state_dict(log.state_dict())
    assert copy.jsonl() == log.jsonl() and copy.counts == log.counts
    assert tuple(d.kind for d in DETECTORS) == KINDS


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("monitor.on_nonfinite=halt",
         "monitor.on_nonfinite='halt' is not allowed; it must be one of ['stop', 'continue']"),
        ("monitor.max_loss=-1", "monitor.max_loss=-1 is not allowed; it must be a number > 0"),
        ("monitor.vanishing_patience=0", "monitor.vanishing_patience=0 is not allowed; it must be an integer >= 1"),
        ("monitor.on_stalled=halt", "monitor.on_stalled='halt' is not allowed; it must be one of ['stop', 'continue']"),
        ("monitor.stall_loss_tolerance=1",
         "monitor.stall_loss_tolerance=1 is not allowed; it must be a number in (0, 1)"),
        ("monitor.nonfinite_count=some",
         "monitor.nonfinite_count='some' is not allowed; it must be one of ['tensors', 'values']"),
        ("+monitor.max_los=3", "monitor.max_los is not a setting of GradientHealthMonitor (did you mean 'max_loss'?)"),
        ("monitor.divergence_factor=1", "monitor.divergence_factor=1 is not allowed; it must be a number > 1"),
        ("monitor.on_plateau=halt", "monitor.on_plateau='halt' is not allowed; it must be one of ['stop', 'continue']"),
        ("monitor.plateau_window=1", "monitor.plateau_window=1 is not allowed; it must be an integer >= 2"),
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
