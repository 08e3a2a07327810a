"""What a health monitor tells the entry point at the end of a run: one typed verdict.

The entry point (`src/train.py`) asks every callback that is a `VerdictSource` for its verdict,
and from the verdicts alone decides the run's `outcome` (`diverged` or not) and whether the
test phase runs. It never looks inside a monitor.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

HEALTHY = "healthy"
INCONCLUSIVE = "inconclusive"  # no event, but the run ended at chance level before `plateau` could judge it


@dataclass(frozen=True)
class HealthVerdict:
    """One monitor's conclusion about a run.

    kind: `healthy`, or the kind of the run's first health event — its first sustained problem (a kind of
        `src/monitor/detectors/__init__.py::KINDS`: `nonfinite`, `exploding`, `divergence`, `zeroed_weights`,
        `vanishing`, `dead_units`, `stalled`, `unstable`, `plateau`) — or `inconclusive`: no event, but the
        run ended with its loss still near chance level, too soon for `plateau` to judge it (the
        `health.verdict` tag).
    diverged: the run went non-finite or diverged: its outcome is `diverged`, whatever the stop policy.
    test_after_divergence: whether a diverged run still runs its test phase.
    first_event_step: optimizer step of the first event (None when healthy).
    """

    kind: str = HEALTHY
    diverged: bool = False
    test_after_divergence: bool = False
    first_event_step: int | None = None


@runtime_checkable
class VerdictSource(Protocol):
    """A callback that judges the run's health (the gradient-health monitor, test doubles)."""

    def verdict(self) -> HealthVerdict: ...


def combine(verdicts: Iterable[HealthVerdict]) -> HealthVerdict:
    """Several monitors' verdicts as one: diverged if any says so; the earliest event's kind (`inconclusive`
    when none has an event and one is inconclusive)."""
    verdicts = list(verdicts)
    events = sorted((v for v in verdicts if v.kind not in (HEALTHY, INCONCLUSIVE)),
                    key=lambda v: (v.first_event_step is None, v.first_event_step or 0))
    unsure = any(v.kind == INCONCLUSIVE for v in verdicts)
    first = events[0] if events else HealthVerdict(kind=INCONCLUSIVE if unsure else HEALTHY)
    diverged = [v for v in verdicts if v.diverged]
    return HealthVerdict(
        kind=first.kind,
        diverged=bool(diverged),
        test_after_divergence=bool(diverged) and all(v.test_after_divergence for v in diverged),
        first_event_step=first.first_event_step,
    )
