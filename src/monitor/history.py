"""The plots' history of per-layer values, in bounded memory however long the run.

Keeps at most `capacity` rows (steps). When full, every other kept row is dropped and from then on
only every 2nd, 4th, … step is kept: the rows stay evenly spaced over the whole run, at a stride
that doubles as the run grows. The first step and, for the plots, the latest one are always kept.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class DecimatedHistory:
    def __init__(self, capacity: int = 2048) -> None:
        self.capacity = max(2, capacity)
        self.stride = 1
        self.steps: list[int] = []
        self.rows: list[np.ndarray] = []
        self.latest: tuple[int, np.ndarray] | None = None  # the newest row, kept even off the stride

    def add(self, steps: np.ndarray, values: np.ndarray) -> None:
        """Rows (steps in order) of per-layer values (n, L)."""
        for step, row in zip(np.asarray(steps).tolist(), np.asarray(values, dtype=np.float32), strict=True):
            self.latest = (int(step), row)
            if self.steps and (step - self.steps[0]) % self.stride:
                continue
            self.steps.append(int(step))
            self.rows.append(row)
            if len(self.steps) > self.capacity:
                self.stride *= 2
                keep = [i for i, s in enumerate(self.steps) if (s - self.steps[0]) % self.stride == 0]
                self.steps = [self.steps[i] for i in keep]
                self.rows = [self.rows[i] for i in keep]

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) for plotting, the latest row included."""
        steps, rows = list(self.steps), list(self.rows)
        if self.latest is not None and (not steps or self.latest[0] > steps[-1]):
            steps.append(self.latest[0])
            rows.append(self.latest[1])
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        return np.array(steps, dtype=np.int64), np.stack(rows)

    def state_dict(self) -> dict[str, Any]:
        """Plain Python values (a checkpoint loads with `weights_only`)."""
        return {"stride": self.stride, "steps": list(self.steps), "rows": [r.tolist() for r in self.rows],
                "latest": [self.latest[0], self.latest[1].tolist()] if self.latest is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stride = int(state["stride"])
        self.steps = [int(s) for s in state["steps"]]
        self.rows = [np.asarray(r, dtype=np.float32) for r in state["rows"]]
        latest = state["latest"]
        self.latest = (int(latest[0]), np.asarray(latest[1], dtype=np.float32)) if latest else None
