"""`unstable`: sharpness past the optimizer's stability line — `sharpness/stability` (λ_max·η/2, or
Adam's preconditioned form; `src/monitor/instruments/sharpness.py`) above 1 — on every probe over
`unstable_patience` steps (a probe whose Lanczos residual says it has not converged gives no
`sharpness/stability`, so it is not judged). Gradient descent on a direction of curvature λ > 2/η
overshoots and grows along it (Cohen et al. 2021); one probe past the line is the edge of stability's
usual oscillation, several in a row a run that is not coming back. Steps without a probe are not judged.
"""

from __future__ import annotations

from collections.abc import Mapping

from src.monitor.detectors.base import Detector, StepView, Sustained, finite, sampled_min_steps
from src.monitor.events import HealthEvent


class UnstableDetector(Detector):
    kind = "unstable"

    def __init__(self, thresholds) -> None:  # noqa: ANN001
        super().__init__(thresholds)
        self.run = Sustained(self.t.unstable_patience)

    def min_steps(self, schedules: Mapping[str, int]) -> int | None:
        return sampled_min_steps(schedules.get("sharpness", 0), self.t.unstable_patience)

    def observe(self, view: StepView) -> HealthEvent | None:
        value = view.extras.get("sharpness/stability")
        if not finite(value):
            return None  # no sample at this step: not judged, the run of samples goes on
        if not self.run.update(value > 1.0, view.step):
            return None
        return HealthEvent(view.step, self.kind, view.extras.get("sharpness/lambda_max", value),
                           view.extras.get("sharpness/threshold", 1.0), None, "sharpness", self.run.since)
