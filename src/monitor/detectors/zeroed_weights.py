"""`zeroed_weights`: a layer whose weights are all exactly zero (‖θ‖ = 0) for `zeroed_patience` steps.

A layer at zero passes no signal: every layer below it gets an exact-zero data gradient (a cut), and its
relative gradient ‖g‖/‖θ‖ is not a number. L1 (proximal soft-thresholding, or a large subgradient dose)
and Elastic Net can drive a whole layer there — a late, regularizer-made cut, not a vanishing gradient
(the study notes: "L1 zeroes weights progressively"). Such a step is a fact to report, not a step
to skip. The event names the input-most zeroed layer.
"""

from __future__ import annotations

from src.monitor.detectors.base import Detector, StepView, Sustained
from src.monitor.events import HealthEvent


class ZeroedWeightsDetector(Detector):
    kind = "zeroed_weights"

    def __init__(self, thresholds) -> None:  # noqa: ANN001
        super().__init__(thresholds)
        self.run = Sustained(self.t.zeroed_patience)

    def observe(self, view: StepView) -> HealthEvent | None:
        if view.skipped:
            self.run.update(None, view.step)
            return None
        if not self.run.update(view.zeroed_layer is not None, view.step):
            return None
        return HealthEvent(view.step, self.kind, 0.0, 0.0, view.zeroed_layer, "weight_norm", self.run.since)
