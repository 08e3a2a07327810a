"""One flush's judgement: every detector on every step view, in order; the events, the log, the timeline.

Within a step the detectors are asked in the registry's order; a `residual` one (`plateau`) is asked
last and told whether another detector's state is active at that step (`StepView.explained`). After the
step, the timeline gets the step's state: the first active detector's kind, else `healthy`; an event
whose sustained run began earlier first turns that run's `healthy` steps into its kind (`timeline.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from src.monitor.detectors import Detector, StepView
from src.monitor.events import EventLog, HealthEvent
from src.monitor.timeline import Timeline
from src.monitor.verdict import HEALTHY


def current_state(detectors: Sequence[Detector]) -> str:
    return next((d.kind for d in detectors if d.active), HEALTHY)


def judge_views(
    views: Iterable[StepView], detectors: Sequence[Detector], log: EventLog, timeline: Timeline,
    on_event: Callable[[HealthEvent], None] | None = None,
) -> list[tuple[HealthEvent, int]]:
    """(event, running count of its kind) for every event these steps gave, in step order."""
    found: list[tuple[HealthEvent, int]] = []
    regular = [d for d in detectors if not d.residual]
    residual = [d for d in detectors if d.residual]
    order = {d.kind: i for i, d in enumerate(detectors)}
    for view in views:
        events = [e for d in regular if (e := d.observe(view)) is not None]
        if residual:
            told = replace(view, explained=any(d.active for d in regular))
            events += [e for d in residual if (e := d.observe(told)) is not None]
        for event in sorted(events, key=lambda e: order.get(e.kind, len(order))):
            if on_event is not None and log.counts.get(event.kind, 0) == 0:
                on_event(event)
            found.append((event, log.add(event)))
            if event.since is not None and event.since < event.step:
                timeline.backdate(event.kind, event.since)
        timeline.mark(view.step, current_state(detectors))
    return found
