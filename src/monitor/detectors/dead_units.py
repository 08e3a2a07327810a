"""`dead_units`: a layer whose ReLU units are dead — zero for every example of the batch — for most of
its units, on every sample of the unit-health instrument over `dead_patience` steps (`dead/max`, the
largest dead fraction over the layers, above `dead_fraction`). A dead unit passes no signal and its
weights get no gradient; a layer of them cuts the back-propagated signal to zero below it. Steps
without a sample (the instrument's schedule) are not judged and do not break a run.
"""

from __future__ import annotations

from collections.abc import Mapping

from src.monitor.detectors.base import Detector, StepView, Sustained, finite, sampled_min_steps
from src.monitor.events import HealthEvent


class DeadUnitsDetector(Detector):
    kind = "dead_units"

    def __init__(self, thresholds) -> None:  # noqa: ANN001
        super().__init__(thresholds)
        self.run = Sustained(self.t.dead_patience)

    def min_steps(self, schedules: Mapping[str, int]) -> int | None:
        return sampled_min_steps(schedules.get("units", 0), self.t.dead_patience)

    def observe(self, view: StepView) -> HealthEvent | None:
        value = view.extras.get("dead/max")
        if not finite(value):
            return None  # no sample at this step: not judged, the run of samples goes on
        if not self.run.update(value > self.t.dead_fraction, view.step):
            return None
        dead = {k: v for k, v in view.extras.items() if k.startswith("dead/") and k != "dead/max"}
        layer = max(dead, key=dead.get)[len("dead/"):] if dead else None
        return HealthEvent(view.step, self.kind, value, self.t.dead_fraction, layer, "dead_max", self.run.since)
