"""`plateau`: the network is not learning — its data loss sits near chance level, ln C, and does not fall.

Holds at a step when, over the last `plateau_window` finite losses, (a) their mean is above
(1 − `plateau_margin`)·ln C (the net has learned less than that margin of what a uniform guess does)
and (b) the mean of the window's second half is less than `plateau_min_drop`·ln C below its first
half's (no downward trend), and (c) no other detector's state is active (`StepView.explained`: a
vanishing, dead or stalled net sits at chance too, and they say why). It fires when that has held
for `plateau_patience` steps; the event's `since` is the first step of the window where it began.

How it relates to the others: `stalled` is a chance-level loss *with* a dead data gradient (the median
layer's ‖g‖/‖θ‖ below 1e-5) and `vanishing` a gradient that decays toward the input by six or more
decades; a net at chance whose gradients are small-but-not-tiny, or that point nowhere useful (a
sigmoid LeNet-5 at 2-3 decades of decay, where Glorot & Bengio 2010 find learning impaired; a plain
deep CNN whose signal shrinks layer by layer; a saddle), falls between them and is caught here.
A net that learns slowly (a small learning rate) keeps a downward trend and is not.
`ended_at_chance` says whether the run's last losses are still near ln C, for the `inconclusive`
verdict of a run too short for this detector to judge.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

from src.monitor.detectors.base import Detector, StepView, Sustained, finite
from src.monitor.events import HealthEvent


class PlateauDetector(Detector):
    kind = "plateau"
    residual = True

    def __init__(self, thresholds) -> None:  # noqa: ANN001
        super().__init__(thresholds)
        self.run = Sustained(self.t.plateau_patience)
        self.losses: list[float] = []  # the last `plateau_window` finite losses (a list, for the checkpoint)
        self.chance = float("nan")

    def min_steps(self, schedules: Mapping[str, int]) -> int | None:
        return self.t.plateau_window + self.t.plateau_patience - 1

    @property
    def ended_at_chance(self) -> bool:
        """The mean of the latest half of the kept losses (at most half a window: the run's end, not its start)
        is within the margin of ln C, or above it."""
        recent = self.losses[len(self.losses) // 2:]
        return bool(recent) and finite(self.chance) and self._near_chance(recent)

    def _near_chance(self, losses: list[float]) -> bool:
        return sum(losses) / len(losses) >= (1 - self.t.plateau_margin) * self.chance

    def observe(self, view: StepView) -> HealthEvent | None:
        if view.skipped or not (finite(view.loss) and finite(view.chance_loss)):
            self.run.update(None, view.step)
            return None
        self.chance = view.chance_loss
        window = deque(self.losses, maxlen=self.t.plateau_window)
        window.append(float(view.loss))
        self.losses = list(window)
        if len(self.losses) < self.t.plateau_window:
            return None
        half = len(self.losses) // 2
        drop = sum(self.losses[:half]) / half - sum(self.losses[half:]) / (len(self.losses) - half)
        holds = (self._near_chance(self.losses) and drop < self.t.plateau_min_drop * view.chance_loss
                 and not view.explained)
        if not self.run.update(holds, view.step):
            return None
        mean = sum(self.losses) / len(self.losses)
        since = max(0, (self.run.since or view.step) - self.t.plateau_window + 1)
        return HealthEvent(view.step, self.kind, mean, (1 - self.t.plateau_margin) * view.chance_loss, None,
                           "loss_window", since)
