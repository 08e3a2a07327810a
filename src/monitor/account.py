"""The run's account at its end, from the monitor's state: the verdict (with `inconclusive`), the `health.*`
tags of the timeline and coverage, and the console summary's facts.

`inconclusive`: no event, and the run's latest losses were still near chance level (`plateau`'s margin)
when it ended, too soon for `plateau` to judge whether it learns — a short run at chance is not `healthy`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from src.monitor.coverage import blind_kinds, coverage_tags
from src.monitor.detectors.plateau import PlateauDetector
from src.monitor.state import MonitorState
from src.monitor.summary import HealthSummary
from src.monitor.verdict import HEALTHY, INCONCLUSIVE


def _plateau(state: MonitorState) -> PlateauDetector | None:
    return next((d for d in state.detectors if isinstance(d, PlateauDetector)), None)


def blind_to(state: MonitorState, schedules: Mapping[str, int]) -> list[str]:
    """The kinds that could not fire in the steps judged so far (`coverage.py`)."""
    return blind_kinds(state.detectors, schedules, state.timeline.judged)


def verdict_kind(state: MonitorState, schedules: Mapping[str, int]) -> str:
    """The first event's kind; with none, `inconclusive` when the run ended near chance level too soon for
    `plateau` to judge it, else `healthy`."""
    kind = state.log.verdict
    plateau = _plateau(state)
    if kind == HEALTHY and plateau is not None and plateau.ended_at_chance and plateau.kind in blind_to(state,
                                                                                                         schedules):
        return INCONCLUSIVE
    return kind


def end_tags(state: MonitorState, schedules: Mapping[str, int]) -> dict[str, str]:
    """`health.verdict`, `health.events`, `health.first_event_step`, `health.final_state`, `health.recovered`,
    `health.coverage`, `health.blind_to`."""
    return {**state.log.tags(), "health.verdict": verdict_kind(state, schedules), **state.timeline.tags(),
            **coverage_tags(blind_to(state, schedules))}


def health_summary(state: MonitorState, schedules: Mapping[str, int], plots: Sequence[str]) -> HealthSummary | None:
    """The facts of the end summary; None before any step was judged."""
    timeline = state.timeline
    if not timeline.judged:
        return None
    plateau = _plateau(state)
    recent = plateau.losses[len(plateau.losses) // 2:] if plateau is not None else []
    return HealthSummary(
        verdict=verdict_kind(state, schedules), first_event=state.log.first, steps_in=timeline.steps_in(),
        judged=timeline.judged, final_state=timeline.final_state, recovered=timeline.recovered,
        blind_to=blind_to(state, schedules), ended_at_chance=bool(plateau and plateau.ended_at_chance),
        final_loss=sum(recent) / len(recent) if recent else None,
        chance_loss=plateau.chance if plateau is not None and recent else None, plots=list(plots))
