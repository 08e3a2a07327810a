"""Health events and the run's log of them: counts, `events.jsonl`, the `health.*` tags, the verdict.

An event is what a detector (`src/monitor/detectors/`) reports when its sustained condition starts
to hold; the log keeps every event in step order. The run's verdict is the kind of its first event
(`healthy` when there is none): events are found in step order, and within a step in the order
the detectors are listed (`src/monitor/detectors/__init__.py::KINDS`), so the first one in the log is
the first sustained problem.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from src.monitor.verdict import HEALTHY


@dataclass(frozen=True)
class HealthEvent:
    """One line of `events.jsonl`.

    step: the optimizer step at which the condition had held long enough (its patience) — the event's step.
    since: the first step of that run of steps (equal to `step` for conditions without patience).
    value, threshold: what crossed which limit (units of the `source` measure); layer where one applies.
    source: which measure fired: loss, gradient, norm_overflow, amp_skips, amp_scale, global_rel, first_rel, ...
    """

    step: int
    kind: str
    value: float
    threshold: float
    layer: str | None = None
    source: str | None = None
    since: int | None = None

    def to_json(self) -> str:
        """JSON with non-finite numbers written as strings ("nan", "inf"), which JSON itself lacks."""
        data = {k: (str(v) if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}
        return json.dumps({k: v for k, v in data.items() if v is not None})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HealthEvent:
        values = {k: (float(v) if k in ("value", "threshold") else v) for k, v in data.items()}
        return cls(**values)


class EventLog:
    """Every event of a run in step order, with running counts per kind (`kinds`: their order in the tags)."""

    def __init__(self, kinds: Sequence[str] = ()) -> None:
        self.kinds = tuple(kinds)
        self.events: list[HealthEvent] = []
        self.counts = {kind: 0 for kind in self.kinds}

    def add(self, event: HealthEvent) -> int:
        """Append `event`; return the running count of its kind (for `events/<kind>`)."""
        self.events.append(event)
        self.counts[event.kind] = self.counts.get(event.kind, 0) + 1
        return self.counts[event.kind]

    @property
    def first(self) -> HealthEvent | None:
        return self.events[0] if self.events else None

    @property
    def verdict(self) -> str:
        """`healthy`, or the kind of the first event."""
        return self.events[0].kind if self.events else HEALTHY

    def jsonl(self) -> str:
        """All events, one JSON object a line (the `events.jsonl` artifact)."""
        return "".join(e.to_json() + "\n" for e in self.events)

    def summary(self) -> str:
        """`nonfinite:1,exploding:2`, or `none`: the `health.events` tag."""
        return ",".join(f"{k}:{v}" for k, v in self.counts.items() if v) or "none"

    def tags(self) -> dict[str, str]:
        """The `health.*` tags: verdict, event counts, and the first event's step."""
        tags = {"health.verdict": self.verdict, "health.events": self.summary()}
        if self.first is not None:
            tags["health.first_event_step"] = str(self.first.step)
        return tags

    def state_dict(self) -> dict[str, Any]:
        return {"events": [json.loads(e.to_json()) for e in self.events]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.events, self.counts = [], {kind: 0 for kind in self.kinds}
        for data in state.get("events", []):
            self.add(HealthEvent.from_dict(data))
