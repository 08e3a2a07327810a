"""Health over time, on hand-made steps: patience in steps, zeros as facts, `plateau`, the timeline and its
metrics, coverage, and the verdict's `inconclusive`. Each rule is shown on a case built to meet it beside
one built not to."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from src.monitor.coverage import blind_kinds, coverage_tags
from src.monitor.detectors import KINDS, default_detectors
from src.monitor.detectors.dead_units import DeadUnitsDetector
from src.monitor.detectors.plateau import PlateauDetector
from src.monitor.detectors.vanishing import VanishingDetector
from src.monitor.detectors.zeroed_weights import ZeroedWeightsDetector
from src.monitor.events import EventLog
from src.monitor.judge import judge_views
from src.monitor.state import _first_zeroed
from src.monitor.thresholds import Thresholds
from src.monitor.timeline import Timeline
from src.monitor.verdict import HEALTHY, INCONCLUSIVE, HealthVerdict, combine
from tests.step_views import LN10, fired, view


def test_patience_is_counted_in_steps_so_sparse_samples_do_not_lose_the_race() -> None:
    t = Thresholds(dead_patience=40)
    every_step = [view(s, extras={"dead/max": 1.0, "dead/02.c": 1.0}) for s in range(60)]
    every_tenth = [view(s, extras={"dead/max": 1.0, "dead/02.c": 1.0} if s % 10 == 0 else {}) for s in range(60)]
    every_25th = [view(s, extras={"dead/max": 1.0} if s % 25 == 0 else {}) for s in range(60)]
    assert [e.step for e in fired(DeadUnitsDetector(t), every_step)] == [39]
    assert [e.step for e in fired(DeadUnitsDetector(t), every_tenth)] == [40]  # the first sample at >= 40 steps
    assert [e.step for e in fired(DeadUnitsDetector(t), every_25th)] == [50]
    healthy = [view(s, extras={"dead/max": 0.3} if s % 10 == 0 else {}) for s in range(60)]
    assert fired(DeadUnitsDetector(t), healthy) == []
    assert DeadUnitsDetector(t).min_steps({"units": 10}) == 41 and DeadUnitsDetector(t).min_steps({"units": 0}) is None


def test_an_exact_zero_gradient_is_a_cut_not_a_vanishing_ratio() -> None:
    t = Thresholds(vanishing_patience=3)
    cut = [view(s, first_rel=0.0, last_rel=1e-2) for s in range(10)]  # below a dead layer: exactly nothing
    assert fired(VanishingDetector(t), cut) == []
    tiny = [view(s, first_rel=1e-12, last_rel=1e-2) for s in range(10)]  # a decay: vanishing
    assert [e.step for e in fired(VanishingDetector(t), tiny)] == [2]


def test_a_layer_of_zeros_is_a_fact_not_a_step_to_skip() -> None:
    t = Thresholds(zeroed_patience=4)
    assert _first_zeroed(np.array([0.5, 0.0, 0.0, 1.0]), ["00.a", "01.b", "02.c", "03.d"]) == "01.b"
    assert _first_zeroed(np.array([0.5, 1e-30, 2.0]), ["00.a", "01.b", "02.c"]) is None  # small is not zero
    zeroed = [view(s, zeroed_layer="01.b", first_rel=math.nan) for s in range(6)]
    [event] = fired(ZeroedWeightsDetector(t), zeroed)
    assert (event.step, event.since, event.layer, event.kind) == (3, 0, "01.b", "zeroed_weights")
    passing = [view(s, zeroed_layer="01.b" if s % 3 == 0 else None) for s in range(12)]  # through zero, not at it
    assert fired(ZeroedWeightsDetector(t), passing) == []


T_PLATEAU = Thresholds(plateau_window=20, plateau_patience=30, plateau_margin=0.1, plateau_min_drop=0.005)


def noisy(step: int, centre: float) -> float:
    return centre + 0.01 * math.sin(1.7 * step)  # batch-to-batch noise, no trend


def test_plateau_fires_on_a_net_stuck_at_chance_not_on_one_that_learns_slowly() -> None:
    stuck = [view(s, loss=noisy(s, LN10 + 0.02)) for s in range(100)]
    [event] = fired(PlateauDetector(T_PLATEAU), stuck)
    assert (event.step, event.since, event.kind) == (19 + 29, 0, "plateau")  # window full at 19, then patience
    assert PlateauDetector(T_PLATEAU).min_steps({}) == 49
    slow = [view(s, loss=noisy(s, LN10 - 0.002 * s)) for s in range(100)]  # 0.2 nats per 100 steps: learning
    assert fired(PlateauDetector(T_PLATEAU), slow) == []
    learned = [view(s, loss=noisy(s, 1.2)) for s in range(100)]  # flat, but far below chance: converged
    assert fired(PlateauDetector(T_PLATEAU), learned) == []
    explained = [view(s, loss=noisy(s, LN10), explained=True) for s in range(100)]  # stalled says why
    assert fired(PlateauDetector(T_PLATEAU), explained) == []


def test_plateau_knows_a_run_that_ended_at_chance() -> None:
    d = PlateauDetector(T_PLATEAU)
    fired(d, [view(s, loss=LN10) for s in range(5)])
    assert d.ended_at_chance
    d = PlateauDetector(T_PLATEAU)
    fired(d, [view(s, loss=0.4) for s in range(5)])
    assert not d.ended_at_chance
    d = PlateauDetector(T_PLATEAU)
    fired(d, [view(s, loss=LN10 if s < 10 else 0.5) for s in range(16)])  # started at chance, learned since
    assert not d.ended_at_chance


def test_timeline_backdates_an_event_to_its_run_and_counts_states() -> None:
    tl = Timeline(KINDS)
    for s in range(10):
        tl.mark(s, HEALTHY)
    tl.backdate("vanishing", 6)  # the condition held from step 6; the event came at 9
    for s in range(10, 15):
        tl.mark(s, "vanishing")
    for s in range(15, 20):
        tl.mark(s, HEALTHY)
    assert tl.segments == [[HEALTHY, 0, 5], ["vanishing", 6, 14], [HEALTHY, 15, 19]]
    assert tl.steps_in()["vanishing"] == 9 and tl.steps_in()[HEALTHY] == 11 and tl.judged == 20
    assert tl.onsets()["vanishing"] == 1 and tl.onsets()["plateau"] == 0
    assert tl.final_state == HEALTHY and tl.recovered
    metrics = tl.metrics()
    assert metrics["health/frac_vanishing"] == pytest.approx(9 / 20)
    assert sum(v for k, v in metrics.items() if k.startswith("health/frac_")) == pytest.approx(1.0)
    assert tl.tags() == {"health.final_state": "healthy", "health.recovered": "true"}
    assert json.loads(tl.to_json())[1] == {"state": "vanishing", "start_step": 6, "end_step": 14}
    copy = Timeline(KINDS)
    copy.load_state_dict(json.loads(json.dumps(tl.state_dict())))
    assert copy.segments == tl.segments
    never_sick = Timeline(KINDS)
    never_sick.mark(0, HEALTHY)
    assert never_sick.tags()["health.recovered"] == "false"


def test_judge_keeps_state_by_priority_and_plateau_only_where_nothing_explains() -> None:
    t = Thresholds(stall_patience=5, plateau_window=4, plateau_patience=3, vanishing_patience=3)
    detectors, log, tl = default_detectors(t), EventLog(KINDS), Timeline(KINDS)
    dead = [view(s, loss=LN10, median_layer_rel=1e-7) for s in range(20)]  # stalled: dead and at chance
    found = judge_views(dead, detectors, log, tl)
    assert [e.kind for e, _ in found] == ["stalled"]  # plateau is explained by stalled's active state
    assert tl.segments == [["stalled", 0, 19]]
    detectors, log, tl = default_detectors(t), EventLog(KINDS), Timeline(KINDS)
    announced: list[str] = []
    stuck = [view(s, loss=LN10, median_layer_rel=1e-3) for s in range(12)]  # alive gradient, at chance
    learning = [view(12 + s, loss=1.0 - 0.05 * s, median_layer_rel=1e-3) for s in range(8)]
    found = judge_views(stuck + learning, detectors, log, tl, lambda e: announced.append(e.kind))
    assert [e.kind for e, _ in found] == ["plateau"] and announced == ["plateau"]
    assert tl.segments[0] == ["plateau", 0, tl.segments[0][2]] and tl.final_state == HEALTHY and tl.recovered


def test_coverage_names_the_detectors_a_short_run_could_not_fire() -> None:
    detectors = default_detectors(Thresholds())
    schedules = {"signal": 10, "units": 10, "sharpness": 2000}
    assert blind_kinds(detectors, schedules, 30) == ["dead_units", "stalled", "unstable", "plateau"]
    assert blind_kinds(detectors, schedules, 400) == ["unstable"]
    assert blind_kinds(detectors, {**schedules, "units": 0}, 400) == ["dead_units", "unstable"]
    assert blind_kinds(detectors, schedules, 2000) == ["unstable"] and blind_kinds(detectors, schedules, 2001) == []
    assert coverage_tags([]) == {"health.coverage": "full", "health.blind_to": "none"}
    assert coverage_tags(["stalled", "plateau"]) == {"health.coverage": "partial", "health.blind_to": "stalled,plateau"}


def test_combining_verdicts_keeps_events_ahead_of_inconclusive() -> None:
    unsure, well = HealthVerdict(kind=INCONCLUSIVE), HealthVerdict()
    assert combine([unsure, well]).kind == INCONCLUSIVE
    assert combine([unsure, HealthVerdict(kind="plateau", first_event_step=300)]).kind == "plateau"
    assert combine([well, well]).kind == HEALTHY
