"""`divergence`: the data loss leaves its running mean upward and stays out, after a warm-up.

After Lightning's `SpikeDetection` (a running mean as reference, relative and absolute tolerances,
a warm-up), with patience instead of a single step: a step is an *excursion* when its loss exceeds
`divergence_factor` times the reference and the reference plus `divergence_min_increase` nats; the
event fires after `divergence_patience` excursion steps in a row. The reference is the mean of the
last `divergence_window` finite losses outside excursions, so a diverging loss never drags it up.
During the warm-up (the first `divergence_warmup` finite losses, which fall fast and say little
about each other) the reference is ln C instead, the loss of a classifier that knows nothing: a
loss that rises far above it in the first steps (too high a learning rate) has diverged too. There
is no floor at chance level: a trained network whose loss climbs back to ln C has diverged.
Non-finite losses are `nonfinite`'s.
"""

from __future__ import annotations

from collections import deque

from src.monitor.detectors.base import Detector, StepView, Sustained, finite
from src.monitor.events import HealthEvent


class DivergenceDetector(Detector):
    kind = "divergence"

    def __init__(self, thresholds) -> None:  # noqa: ANN001
        super().__init__(thresholds)
        self.run = Sustained(self.t.divergence_patience)
        self.seen = 0  # finite losses so far
        self.recent: list[float] = []  # the reference window (a list, for the checkpoint)

    def observe(self, view: StepView) -> HealthEvent | None:
        if view.skipped or not finite(view.loss):
            self.run.update(None, view.step)
            return None
        self.seen += 1
        if self.seen > self.t.divergence_warmup and self.recent:
            reference: float | None = sum(self.recent) / len(self.recent)
        else:
            reference = view.chance_loss if finite(view.chance_loss) else None
        excursion = (reference is not None and view.loss > self.t.divergence_factor * reference
                     and view.loss > reference + self.t.divergence_min_increase)
        fired = self.run.update(excursion, view.step)
        if not excursion:
            window = deque(self.recent, maxlen=self.t.divergence_window)
            window.append(float(view.loss))
            self.recent = list(window)
        if not fired:
            return None
        assert reference is not None
        threshold = max(self.t.divergence_factor * reference, reference + self.t.divergence_min_increase)
        return HealthEvent(view.step, self.kind, view.loss, threshold, None, "loss", self.run.since)
