"""`stalled`: the data loss at chance level (within `stall_loss_tolerance`·ln C of ln C) while the
typical layer's relative data gradient ‖g‖/‖θ‖ (the median over the layers) is below `stall_rel`,
for `stall_patience` steps in a row: how a dead network looks. A network at initialization sits at
ln C too, with a large gradient; one that has died gets no signal to leave it, though a layer or two
on the output side may still move (which is why the median, not the largest). Layers' weights only:
the output bias of a dead network keeps learning the class priors. With a weight regularizer the
penalty's gradient can be large then — which is why only the data gradient is read.
"""

from __future__ import annotations

from src.monitor.detectors.base import Detector, StepView, Sustained, finite
from src.monitor.events import HealthEvent


class StalledDetector(Detector):
    kind = "stalled"

    def __init__(self, thresholds) -> None:  # noqa: ANN001
        super().__init__(thresholds)
        self.run = Sustained(self.t.stall_patience)

    def observe(self, view: StepView) -> HealthEvent | None:
        if view.skipped or not (finite(view.loss) and finite(view.median_layer_rel) and finite(view.chance_loss)):
            self.run.update(None, view.step)
            return None
        at_chance = abs(view.loss - view.chance_loss) <= self.t.stall_loss_tolerance * view.chance_loss
        holds = at_chance and view.median_layer_rel < self.t.stall_rel
        if not self.run.update(holds, view.step):
            return None
        return HealthEvent(view.step, self.kind, view.median_layer_rel, self.t.stall_rel, None, "median_layer_rel",
                           self.run.since)
