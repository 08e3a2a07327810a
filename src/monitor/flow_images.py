"""A handful of gradient-flow step images per run, so MLflow's image view scrubs the flow over time.

`count` images, at steps evenly spaced over the run's planned length (`trainer.estimated_stepping_batches`,
read at the first flush; a run without a known length gets them at steps 0, 10, 100, 1000, ...).
At a flush whose steps reach the next planned step, the flush's last row of relative data gradients
‖g‖/‖θ‖ per layer is rendered (`src/tracking/step_images.py`, the earlier rows of the flush as thin
lines) and logged with `MlflowClient.log_image` on the sink's client (`experiment`, `run_id`); a
sink without them (a test's memory logger) gets none. A render takes 0.1-0.4 s (more layers take
longer), so the monitor runs it on its background writer (`job`), `count` times a run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np


class FlowImages:
    def __init__(self, count: int, trainer: Any) -> None:
        self.count, self.trainer = count, trainer
        self.targets: list[int] | None = None

    def _plan(self) -> list[int]:
        try:
            total = self.trainer.estimated_stepping_batches
        except Exception:  # noqa: BLE001 - a trainer that cannot tell: the open-ended plan
            total = math.inf
        if isinstance(total, (int, float)) and math.isfinite(total) and total >= 1:
            return sorted({int(s) for s in np.linspace(0, total - 1, self.count).round()})
        return [0] + [10**k for k in range(1, self.count)]

    def job(self, sink: Any, steps: np.ndarray, values: np.ndarray, labels: list[str]) -> Callable[[], Any] | None:
        """What logs the image at the flush's last step, if the flush reached the next planned step (else None)."""
        if self.count <= 0 or not len(steps) or not labels:
            return None
        client, run_id = getattr(sink, "experiment", None), getattr(sink, "run_id", None)
        if client is None or not hasattr(client, "log_image") or not isinstance(run_id, str):
            return None
        if self.targets is None:
            self.targets = self._plan()
        last = int(steps[-1])
        if not self.targets or self.targets[0] > last:
            return None
        self.targets = [t for t in self.targets if t > last]
        from src.tracking.step_images import log_flow_image

        steps, values = np.array(steps), np.array(values)  # the flush's arrays, copied for the writer thread
        return partial(log_flow_image, client, run_id, steps, values, list(labels), last,
                       quantity="relative data gradient ‖g‖/‖θ‖")

    def log(self, sink: Any, steps: np.ndarray, values: np.ndarray, labels: list[str]) -> None:
        """`job`, run at once."""
        job = self.job(sink, steps, values, labels)
        if job is not None:
            job()
