"""What the terminal says about a run's health: a line when an event first fires, and the end summary.

`event_line` is logged (module logger, rank zero) the first time each kind fires during training.
`health_summary_lines(callbacks)` is what the entry point prints after training: the verdict and its first
event, the time in each failing state and the state at the end, a run that ended at chance level (even
when its gradients look fine), which detectors could not fire in a run this short, and where the
gradient-flow plots are.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from src.monitor.events import HealthEvent
from src.monitor.verdict import HEALTHY


@dataclass(frozen=True)
class HealthSummary:
    """One monitor's account of a run (`GradientHealthMonitor.health_summary()`)."""

    verdict: str
    first_event: HealthEvent | None
    steps_in: dict[str, int]  # judged steps per state
    judged: int
    final_state: str | None
    recovered: bool
    blind_to: list[str] = field(default_factory=list)
    ended_at_chance: bool = False
    final_loss: float | None = None  # mean data loss over the latest judged steps (up to half a plateau window)
    chance_loss: float | None = None
    plots: list[str] = field(default_factory=list)  # artifact paths of the gradient-flow figures


def event_line(event: HealthEvent) -> str:
    """`health: vanishing at step 9 (layer 00.net.0): first_rel = 3.1e-17, limit 1e-07`."""
    where = f" (layer {event.layer})" if event.layer else ""
    since = f", since step {event.since}" if event.since is not None and event.since != event.step else ""
    return (f"health: {event.kind} at step {event.step}{where}{since}: {event.source or 'value'} = "
            f"{event.value:.3g}, limit {event.threshold:.3g}")


def summary_lines(s: HealthSummary) -> list[str]:
    lines = [f"Health: {s.verdict}" + (f" — first event: {event_line(s.first_event)[len('health: '):]}"
                                       if s.first_event else "")]
    failing = {k: n for k, n in s.steps_in.items() if k != HEALTHY and n}
    if s.judged:
        spent = ", ".join(f"{k} {n} ({n / s.judged:.0%})" for k, n in failing.items()) or "none"
        end = f"{s.final_state}" + (" (recovered)" if s.recovered else "")
        lines.append(f"  time in failing states over {s.judged} steps: {spent}; state at the end: {end}")
    if s.ended_at_chance and s.final_loss is not None and s.chance_loss is not None:
        lines.append(f"  ended at chance level: training loss {s.final_loss:.3f} against ln C = {s.chance_loss:.3f}"
                     " — the network has not learned (whatever its gradients look like)")
    if s.blind_to:
        lines.append(f"  coverage: partial — too short (or instrument off) for: {', '.join(s.blind_to)}")
    if s.plots:
        lines.append(f"  gradient-flow plots (run artifacts): {', '.join(s.plots)}")
    return lines


@runtime_checkable
class SummarySource(Protocol):
    """A callback that accounts for a run's health (the gradient-health monitor)."""

    def health_summary(self) -> HealthSummary | None: ...


def health_summary_lines(callbacks: Iterable[object]) -> list[str]:
    """The end summary of every `SummarySource` among `callbacks` that judged any step."""
    lines: list[str] = []
    for callback in callbacks:
        if isinstance(callback, SummarySource) and (summary := callback.health_summary()) is not None:
            lines += summary_lines(summary)
    return lines
