"""Which detectors could have fired at all in this run: its length against their patience and schedules.

A 30-step run cannot be `stalled` (patience 50 steps), `dead_units` needs unit-health samples over 40
steps, `unstable` two sharpness probes (2,001 steps at the default schedule), `plateau` 299 steps of
losses: a run that short reads `healthy` for those kinds only because they were never asked. The run says so:
`health.coverage` = `full` (every detector could fire) or `partial`, and `health.blind_to` lists the
kinds that could not (`none` when full).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from src.monitor.detectors import Detector


def blind_kinds(detectors: Sequence[Detector], schedules: Mapping[str, int], judged_steps: int) -> list[str]:
    """The kinds whose detector needs more steps than `judged_steps` (or an instrument that is off)."""
    blind = []
    for detector in detectors:
        needed = detector.min_steps(schedules)
        if needed is None or needed > judged_steps:
            blind.append(detector.kind)
    return blind


def coverage_tags(blind: Sequence[str]) -> dict[str, str]:
    return {"health.coverage": "partial" if blind else "full", "health.blind_to": ",".join(blind) or "none"}
