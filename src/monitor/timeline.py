"""The run's health over time: one state per judged optimizer step, as segments, and what follows from them.

A step's state is `healthy`, or the kind of the first detector (in the registry's order, `KINDS`) whose
condition has fired and not cleared since (`Detector.active`). When an event fires, the steps of its
sustained run (from the event's `since`) that were still `healthy` become its kind: the condition held
there, it had only not held long enough to be called. So the states partition the judged steps, and
time in a state is counted in optimizer steps.

What a sweep filters and sorts on (`run_end.py` logs them): the steps and fraction of judged steps in
each state (`health/steps_<state>`, `health/frac_<state>`), the onsets of each kind (segments entered:
`health/onsets_<kind>`), the state at the end (`health.final_state`) and whether the run recovered (a
problem state seen, and `healthy` at the end: `health.recovered` = `true`); the segments themselves are
the `health/timeline.json` artifact, a list of `{state, start_step, end_step}` (both ends included).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from src.monitor.verdict import HEALTHY


class Timeline:
    def __init__(self, kinds: Sequence[str] = ()) -> None:
        self.kinds = tuple(kinds)
        self.segments: list[list[Any]] = []  # [state, start_step, end_step], in step order, merged

    def mark(self, step: int, state: str) -> None:
        """Step `step` (after every earlier one) is in `state`."""
        last = self.segments[-1] if self.segments else None
        if last is not None and last[0] == state and last[2] == step - 1:
            last[2] = step
        else:
            self.segments.append([state, step, step])

    def backdate(self, kind: str, since: int) -> None:
        """The `healthy` steps from `since` on were already in `kind` (its condition held; patience was running)."""
        tail: list[list[Any]] = []
        while self.segments and self.segments[-1][2] >= since:
            tail.insert(0, self.segments.pop())
        for state, start, end in tail:
            if state != HEALTHY or end < since:
                self._append(state, start, end)
                continue
            if start < since:
                self._append(state, start, since - 1)
            self._append(kind, max(start, since), end)

    def _append(self, state: str, start: int, end: int) -> None:
        last = self.segments[-1] if self.segments else None
        if last is not None and last[0] == state and last[2] == start - 1:
            last[2] = end
        else:
            self.segments.append([state, start, end])

    @property
    def judged(self) -> int:
        return sum(end - start + 1 for _, start, end in self.segments)

    @property
    def final_state(self) -> str | None:
        return self.segments[-1][0] if self.segments else None

    def steps_in(self) -> dict[str, int]:
        """Steps per state: `healthy` and every kind (0 where never)."""
        steps = dict.fromkeys((HEALTHY, *self.kinds), 0)
        for state, start, end in self.segments:
            steps[state] = steps.get(state, 0) + end - start + 1
        return steps

    def onsets(self) -> dict[str, int]:
        """Times each kind's state was entered (0 where never)."""
        counts = dict.fromkeys(self.kinds, 0)
        for state, _, _ in self.segments:
            if state != HEALTHY:
                counts[state] = counts.get(state, 0) + 1
        return counts

    @property
    def recovered(self) -> bool:
        """A problem state was seen and the run ended `healthy`."""
        return self.final_state == HEALTHY and any(state != HEALTHY for state, _, _ in self.segments)

    def metrics(self) -> dict[str, float]:
        """`health/steps_<state>`, `health/frac_<state>` (of the judged steps) and `health/onsets_<kind>`."""
        steps, judged = self.steps_in(), self.judged
        out = {f"health/steps_{s}": float(n) for s, n in steps.items()}
        out |= {f"health/frac_{s}": (n / judged if judged else 0.0) for s, n in steps.items()}
        out |= {f"health/onsets_{k}": float(n) for k, n in self.onsets().items()}
        return out

    def tags(self) -> dict[str, str]:
        if not self.segments:
            return {}
        return {"health.final_state": str(self.final_state), "health.recovered": str(self.recovered).lower()}

    def to_json(self) -> str:
        """The `health/timeline.json` artifact."""
        return json.dumps([{"state": s, "start_step": a, "end_step": b} for s, a, b in self.segments], indent=1)

    def state_dict(self) -> dict[str, Any]:
        return {"segments": [list(s) for s in self.segments]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.segments = [list(s) for s in state.get("segments", [])]
