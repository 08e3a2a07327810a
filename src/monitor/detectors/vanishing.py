"""`vanishing`: the gradient decays toward the input until the input-side layer cannot learn.

Holds when the input-side layer's relative data gradient ‖g‖/‖θ‖ is below `vanishing_rel` *and*
below `vanishing_ratio` times the output-side layer's, for `vanishing_patience` steps in a row.
The first condition is absolute and scale-free (a growing last layer cannot make it true); the
second makes it a property of depth (a network whose gradients are uniformly tiny is `stalled`).
Layers without a gradient are not judged; a step where the first layer has none is not judged, nor one
where its gradient is exactly 0: no signal reached it at all, a cut below a dead or zeroed layer
(`dead_units`, `zeroed_weights`), not a decay.

With the back-propagated signal instrument on, it also holds when δ = ∂L/∂z itself decays: the
input-side layer's signal below `vanishing_signal_ratio` times the output-side layer's (but not 0:
that is a cut, dead units) on every sample over `vanishing_signal_patience` steps. The weight gradient
g = δ·aᵀ can hide a vanishing δ behind a shrinking activation a; the signal cannot.
"""

from __future__ import annotations

from collections.abc import Mapping

from src.monitor.detectors.base import Detector, StepView, Sustained, finite, sampled_min_steps
from src.monitor.events import HealthEvent


class VanishingDetector(Detector):
    kind = "vanishing"

    def __init__(self, thresholds) -> None:  # noqa: ANN001
        super().__init__(thresholds)
        self.run = Sustained(self.t.vanishing_patience)
        self.signal_run = Sustained(self.t.vanishing_signal_patience)

    def observe(self, view: StepView) -> HealthEvent | None:
        signal_event = self._signal(view)
        if view.skipped or not (finite(view.first_rel) and finite(view.last_rel)) or view.first_rel == 0:
            self.run.update(None, view.step)
            return signal_event
        holds = view.first_rel < self.t.vanishing_rel and view.first_rel < self.t.vanishing_ratio * view.last_rel
        if not self.run.update(holds, view.step):
            return signal_event
        return HealthEvent(view.step, self.kind, view.first_rel, self.t.vanishing_rel, view.first_layer, "first_rel",
                           self.run.since)

    def min_steps(self, schedules: Mapping[str, int]) -> int | None:
        by_signal = sampled_min_steps(schedules.get("signal", 0), self.t.vanishing_signal_patience)
        return min(self.t.vanishing_patience, by_signal or self.t.vanishing_patience)

    def _signal(self, view: StepView) -> HealthEvent | None:
        ratio = view.extras.get("signal/first_last_ratio")
        if view.skipped or not finite(ratio) or ratio <= 0:
            return None  # no sample at this step: not judged, the run of samples goes on
        if not self.signal_run.update(ratio < self.t.vanishing_signal_ratio, view.step):
            return None
        return HealthEvent(view.step, self.kind, ratio, self.t.vanishing_signal_ratio, view.first_layer,
                           "signal_ratio", self.signal_run.since)
