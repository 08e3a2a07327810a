"""Time, not only the first event: a cell's time in each health state, its end states and recoveries, and
whether its verdict was fixed before the regularizer could act.

Per run the monitor logs the fraction of judged steps in each state (`health/frac_<state>`: healthy or an
event kind, the states partition the steps), the state at the end (`health.final_state`) and whether the
run recovered (`health.recovered`). A cell's time in a state is the mean of its seeds' fractions.

"Fixed before step 30": every seed of the cell had its first event before optimizer step 30. A
regularizer acts through updates; a verdict settled by then says more about the initialisation and the
learning rate than about the regularizer (the first edition: 67 of its 82 regularizer cells of the failing
conditions). `FIXED_BEFORE` is that step.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass

from src.report.study_read import STATES, StudyRun

FIXED_BEFORE = 30  # optimizer steps


@dataclass(frozen=True)
class TimeInStates:
    mean: dict[str, float]  # state -> mean fraction of judged steps over the seeds (states seen only)
    n: int  # seeds that logged their time in states
    final: dict[str, int]  # `health.final_state` counted
    recovered: int  # seeds that had a problem state and ended healthy

    def text(self, limit: int = 3) -> str:
        """`healthy 62%, stalled 38%` (the largest states; "—" without a timeline)."""
        if not self.n:
            return "—"
        shown = sorted(((s, f) for s, f in self.mean.items() if f > 0), key=lambda x: -x[1])[:limit]
        return ", ".join(f"{s} {f:.0%}" for s, f in shown) or "no judged steps"


def time_in_states(runs: list[StudyRun]) -> TimeInStates:
    timed = [r for r in runs if r.states]
    mean = {s: statistics.fmean(r.states.get(s, 0.0) for r in timed) for s in STATES} if timed else {}
    return TimeInStates({s: f for s, f in mean.items() if f > 0}, len(timed),
                        dict(Counter(r.final_state for r in runs if r.final_state)),
                        sum(1 for r in runs if r.recovered))


def fixed_early(runs: list[StudyRun], before: int = FIXED_BEFORE) -> bool | None:
    """Every judged seed had its first event before step `before`; None when no seed has a verdict."""
    judged = [r for r in runs if r.verdict]
    if not judged:
        return None
    return all(r.first_event_step is not None and r.first_event_step < before for r in judged)
