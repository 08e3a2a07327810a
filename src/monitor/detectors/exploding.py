"""`exploding`: the data loss above `max_loss`, or the relative data gradient ‖g‖/‖θ‖ above
`max_global_rel`, for `exploding_patience` steps in a row (one large batch is not an explosion)."""

from __future__ import annotations

from src.monitor.detectors.base import Detector, StepView, Sustained, finite
from src.monitor.events import HealthEvent


class ExplodingDetector(Detector):
    kind = "exploding"

    def __init__(self, thresholds) -> None:  # noqa: ANN001
        super().__init__(thresholds)
        self.run = Sustained(self.t.exploding_patience)

    def observe(self, view: StepView) -> HealthEvent | None:
        if view.skipped or not (finite(view.loss) or finite(view.global_rel)):
            self.run.update(None, view.step)  # a skipped or non-finite step: the nonfinite detector's
            return None
        loss_over = finite(view.loss) and view.loss > self.t.max_loss
        grad_over = finite(view.global_rel) and view.global_rel > self.t.max_global_rel
        if not self.run.update(loss_over or grad_over, view.step):
            return None
        if grad_over:
            return HealthEvent(view.step, self.kind, view.global_rel, self.t.max_global_rel, None, "global_rel",
                               self.run.since)
        return HealthEvent(view.step, self.kind, view.loss, self.t.max_loss, None, "loss", self.run.since)
