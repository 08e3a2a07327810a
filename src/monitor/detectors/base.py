"""What every detector shares: the per-step view it reads, its interface, and the patience counter.

A detector is a small host-side object (no torch): the monitor hands it one `StepView` per optimizer
step, in step order, and it returns a `HealthEvent` on the step its condition has held for its
patience (a rising edge: a run stuck in NaN or at chance yields one event, not one per step); the
condition must clear before it can fire again. Its state (counters, running means) spans flushes
and goes into the checkpoint through `state_dict`/`load_state_dict`.

To add a detector: one file with one subclass of `Detector` (a `kind`, an `observe`, a `min_steps`, the
state it keeps), its place in the registry (`src/monitor/detectors/__init__.py`: the settings schema's
`on_<kind>` policy comes from there) and its `on_<kind>` line in `conf/monitor/default.yaml`. A detector
that needs a measure the view lacks reads it from `StepView.extras`, where an instrument puts its
values under their metric keys (`signal/…`, `dead/…`); the monitor's loop does not change.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from src.monitor.events import HealthEvent
from src.monitor.thresholds import Thresholds


@dataclass(frozen=True)
class StepView:
    """One optimizer step as the detectors see it (host floats; NaN where not measured).

    loss: data loss (mean over the step's micro-batches; None when not measured). skipped: the AMP grad
    scaler skipped the step. nonfinite: NaN/Inf gradient values (or tensors); norm_overflow: a norm is Inf/NaN with no
    such value. global_rel: ‖g‖/‖θ‖ of the data gradient over all parameters. first_rel/last_rel:
    relative data gradient ‖g‖/‖θ‖ of the input-side and output-side layers that have a gradient;
    median_layer_rel: the median over the layers of their relative data gradients (the typical layer's;
    weights of conv/linear layers only, biases and norm layers excluded).
    amp_scale: the grad scaler's scale, on the steps where it was read (flushes), else None.
    chance_loss: ln C, the loss of a uniform guess over C classes (NaN when C is unknown).
    zeroed_layer: the input-most layer whose weights are all exactly 0 (‖θ‖ = 0: no signal passes it), or None.
    explained: another detector's state is active at this step (set for `residual` detectors only).
    A relative gradient of exactly 0 is a fact (no signal reached the layer: a cut), never a small ratio.
    """

    step: int
    loss: float | None = None
    skipped: bool = False
    nonfinite: float = 0.0
    norm_overflow: bool = False
    nonfinite_layer: str | None = None
    global_norm: float = math.nan
    global_rel: float = math.nan
    first_rel: float = math.nan
    first_layer: str | None = None
    last_rel: float = math.nan
    median_layer_rel: float = math.nan
    amp_scale: float | None = None
    chance_loss: float = math.nan
    zeroed_layer: str | None = None
    explained: bool = False
    extras: dict[str, Any] = field(default_factory=dict)


class Detector(ABC):
    """One kind of health event. Subclasses set `kind` and implement `observe`."""

    kind: ClassVar[str]
    default_policy: ClassVar[str] = "continue"  # `on_<kind>`: `stop` ends the run at the flush, `continue` not
    flags_divergence: ClassVar[bool] = False  # its event tags the run `outcome=diverged`, whatever the policy
    residual: ClassVar[bool] = False  # judged after the others, told (`StepView.explained`) whether one is active

    def __init__(self, thresholds: Thresholds) -> None:
        self.t = thresholds

    @abstractmethod
    def observe(self, view: StepView) -> HealthEvent | None:
        """The event that starts at this step, or None. Steps come in order, each once."""

    @property
    def active(self) -> bool:
        """The condition fired and has not cleared since: the run is in this detector's state now."""
        return any(v.fired for v in vars(self).values() if isinstance(v, Sustained))

    def min_steps(self, schedules: Mapping[str, int]) -> int | None:
        """The fewest optimizer steps a run needs before this detector can fire at all (None: never, e.g.
        its instrument is off). `schedules`: each instrument's `every_n_steps` by name (0 = off). This
        default is a detector judged on every step: its longest `Sustained` patience. One that reads an
        instrument's samples overrides it (`sampled_min_steps`)."""
        return max((v.patience for v in vars(self).values() if isinstance(v, Sustained)), default=1)

    def state_dict(self) -> dict[str, Any]:
        """What must survive a checkpoint (plain Python values)."""
        return {k: (v.state_dict() if isinstance(v, Sustained) else v) for k, v in vars(self).items()
                if k != "t" and not k.startswith("_")}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            current = getattr(self, key, None)
            if isinstance(current, Sustained):
                current.load_state_dict(value)
            else:
                setattr(self, key, value)


class Sustained:
    """Tracks a run of steps on which a condition holds; says when it has held for `patience` steps.

    Patience is counted in optimizer steps, not in calls: the run fires on the first judged step `s`
    with `s − since + 1 ≥ patience` (`since` = the run's first step). A detector fed every step and
    one fed an instrument's samples every 10 steps thus wait the same time for the same patience, and
    neither loses a race by the sparseness of its samples. `update(True)` extends the run, `update(False)`
    ends it (and re-arms the edge), `update(None)` leaves it as it is (a step the condition cannot be
    judged on: skipped, or the measure is missing). `fired` stays true from the event until the
    condition clears: the detector's state is active (`Detector.active`, the run's timeline).
    """

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.run = 0  # judged steps in the run
        self.since: int | None = None
        self.fired = False  # the current run already gave its event

    def update(self, holds: bool | None, step: int) -> bool:
        """True exactly on the step the run has lasted `patience` steps."""
        if holds is None:
            return False
        if not holds:
            self.run, self.since, self.fired = 0, None, False
            return False
        if self.since is None:
            self.since = step
        self.run += 1
        if step - self.since + 1 >= self.patience and not self.fired:
            self.fired = True
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"run": self.run, "since": self.since, "fired": self.fired}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.run, self.since, self.fired = state["run"], state["since"], state["fired"]


def finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def sampled_min_steps(every_n_steps: int, patience: int) -> int | None:
    """The fewest steps for a condition read on an instrument's samples (steps 0, n, 2n, …) to last `patience`
    steps: the first sample `k·n` with `k·n + 1 ≥ patience`, plus one (steps are counted from 0)."""
    if every_n_steps <= 0:
        return None
    samples_after_first = max(0, -(-(patience - 1) // every_n_steps))
    return samples_after_first * every_n_steps + 1
