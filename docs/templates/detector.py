"""TEMPLATE: a detector. Copy to `src/monitor/detectors/<kind>.py`, rename `LossSpikeDetector` and its
`kind`, and change the condition. docs/extending.md ("A detector") is the contract and lists where a
new kind is registered.

`loss_spike`: the data loss above `factor` times its running mean (an exponential moving average of
the steps before) for `patience` steps in a row. A single noisy batch is not a spike; a run whose
loss jumps and stays up (a learning rate that became too large after a warm-up) is.

A detector is a small host-side object (no torch): the monitor hands it one `StepView` per optimizer
step, in order, and it returns a `HealthEvent` on the step its condition has held for its patience
(a rising edge: one event per episode, not one per step). Its state (the running mean, the patience
counter) spans flushes and goes into checkpoints through `state_dict`/`load_state_dict`, which the
base class derives from the instance's attributes.
"""

from __future__ import annotations

from src.monitor.detectors.base import Detector, StepView, Sustained, finite
from src.monitor.events import HealthEvent
from src.monitor.thresholds import Thresholds


class LossSpikeDetector(Detector):
    kind = "loss_spike"  # the event's kind: `events/<kind>`, `health.verdict`, a line of events.jsonl

    def __init__(self, thresholds: Thresholds, factor: float = 3.0, patience: int = 3, smoothing: float = 0.9) -> None:
        super().__init__(thresholds)  # the shared thresholds (`self.t`); this detector keeps its own three
        self.factor = factor  # how many times the running mean counts as a spike
        self.smoothing = smoothing  # weight of the past in the running mean (per step)
        self.mean: float | None = None  # running mean of the loss over the steps before (None: no step yet)
        self.run = Sustained(patience)

    def observe(self, view: StepView) -> HealthEvent | None:
        if view.skipped or not finite(view.loss):
            self.run.update(None, view.step)  # cannot be judged: the nonfinite detector's business
            return None
        limit = None if self.mean is None else self.factor * self.mean
        spiking = limit is not None and view.loss > limit
        if not spiking:  # the mean follows the loss only outside spikes, so a spike cannot raise its own bar
            past = view.loss if self.mean is None else self.mean
            self.mean = self.smoothing * past + (1 - self.smoothing) * view.loss
        if not self.run.update(spiking, view.step):
            return None
        return HealthEvent(view.step, self.kind, view.loss, limit, None, "loss", self.run.since)
