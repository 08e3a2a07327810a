"""`divergence`: the data loss rises away from where it has been and stays up.

After Lightning's `SpikeDetection` (a reference, relative and absolute tolerances, a warm-up), with
patience instead of a single step: a step is an *excursion* when its loss exceeds `divergence_factor`
times the reference and the reference plus `divergence_min_increase` nats; the event fires after
`divergence_patience` excursion steps in a row. The question is always "is the loss *rising*?", from
whatever level it started at:
- during the warm-up (the first `divergence_warmup` finite losses, which fall fast and say little about
  each other) the reference is the lowest loss seen before this step: a loss that climbs far above its
  own best (too high a learning rate: 2.3 -> 900) has diverged, while an over-confident initialization
  whose loss starts at 30 nats and falls from the first step never rises above its best and is not one;
- then the reference is the mean of the last `divergence_window` finite losses outside excursions, so a
  diverging loss never drags it up.
There is no floor at chance level: a trained network whose loss climbs back to ln C has diverged.
Non-finite losses are `nonfinite`'s.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

from src.monitor.detectors.base import Detector, StepView, Sustained, finite
from src.monitor.events import HealthEvent


class DivergenceDetector(Detector):
    kind = "divergence"
    default_policy = "stop"
    flags_divergence = True

    def __init__(self, thresholds) -> None:  # noqa: ANN001
        super().__init__(thresholds)
        self.run = Sustained(self.t.divergence_patience)
        self.seen = 0  # finite losses so far
        self.lowest: float | None = None  # the lowest finite loss so far (the warm-up's reference)
        self.recent: list[float] = []  # the reference window (a list, for the checkpoint)

    def min_steps(self, schedules: Mapping[str, int]) -> int | None:
        return self.t.divergence_patience + 1  # one loss to compare with, then the excursions

    def observe(self, view: StepView) -> HealthEvent | None:
        if view.skipped or not finite(view.loss):
            self.run.update(None, view.step)
            return None
        self.seen += 1
        if self.seen > self.t.divergence_warmup and self.recent:
            reference: float | None = sum(self.recent) / len(self.recent)
        else:
            reference = self.lowest
        excursion = (reference is not None and view.loss > self.t.divergence_factor * reference
                     and view.loss > reference + self.t.divergence_min_increase)
        fired = self.run.update(excursion, view.step)
        self.lowest = view.loss if self.lowest is None else min(self.lowest, float(view.loss))
        if not excursion:
            window = deque(self.recent, maxlen=self.t.divergence_window)
            window.append(float(view.loss))
            self.recent = list(window)
        if not fired:
            return None
        assert reference is not None
        threshold = max(self.t.divergence_factor * reference, reference + self.t.divergence_min_increase)
        return HealthEvent(view.step, self.kind, view.loss, threshold, None, "loss", self.run.since)
