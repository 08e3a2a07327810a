"""`nonfinite`: NaN/Inf in the data loss or the data gradient — or, under fp16 AMP, a scaler that keeps skipping.

Without a grad scaler every non-finite gradient is an event, at its exact step. With one, Inf/NaN in
the unscaled gradients is the scaler's routine: it skips that step and halves its scale. Such a step
is counted (`amp/skipped_steps`), not an event; it becomes one when `amp_skip_patience` steps in a
row are skipped or the scale falls below `amp_min_scale` (read at flushes). A non-finite *loss* is
always an event (the scaler acts on gradients only), and so is a gradient norm that overflows
float32 while its values are finite (the statistics themselves are no longer numbers).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from src.monitor.detectors.base import Detector, StepView, Sustained
from src.monitor.events import HealthEvent


class NonfiniteDetector(Detector):
    kind = "nonfinite"
    default_policy = "stop"
    flags_divergence = True

    def __init__(self, thresholds) -> None:  # noqa: ANN001
        super().__init__(thresholds)
        self.episode = False  # a non-finite episode is under way (one event per episode)
        self.skips = Sustained(self.t.amp_skip_patience)
        self.scale_low = False

    @property
    def active(self) -> bool:
        return self.episode or self.skips.fired or self.scale_low

    def min_steps(self, schedules: Mapping[str, int]) -> int | None:
        return 1

    def observe(self, view: StepView) -> HealthEvent | None:
        event = None
        loss_bad = view.loss is not None and not math.isfinite(view.loss)
        grad_bad = view.nonfinite > 0 and not view.skipped
        if loss_bad or grad_bad or view.norm_overflow:
            source = "loss+gradient" if loss_bad and grad_bad else "loss" if loss_bad else (
                "gradient" if grad_bad else "norm_overflow")
            if not self.episode:
                event = HealthEvent(view.step, self.kind, float(view.nonfinite), 0.0, view.nonfinite_layer, source,
                                    view.step)
            self.episode = True
        elif not view.skipped:
            self.episode = False
        if self.skips.update(view.skipped, view.step) and event is None:
            event = HealthEvent(view.step, self.kind, float(self.skips.run), float(self.t.amp_skip_patience),
                                view.nonfinite_layer, "amp_skips", self.skips.since)
        if view.amp_scale is not None:
            low = view.amp_scale < self.t.amp_min_scale
            if low and not self.scale_low and event is None:
                event = HealthEvent(view.step, self.kind, float(view.amp_scale), self.t.amp_min_scale, None,
                                    "amp_scale", view.step)
            self.scale_low = low
        return event

