"""Health events from per-step statistics: nonfinite, exploding, vanishing, divergence.

Pure host-side logic (no torch): the monitor feeds it one row per optimizer step, in order, and
it returns the events that row starts. An event fires when its condition *starts* to hold (a
rising edge), so a run stuck in NaN or in a vanishing regime yields one event, not one per step;
the condition must clear before the same event (kind and source) can fire again.

Default thresholds and where they come from (`conf/monitor/default.yaml` repeats them):

- `max_loss = 1e4`: the blog post that started the project called a loss above 1e4 "exploding".
  A 10-class cross-entropy starts at ln 10 = 2.30; a healthy run never comes near 1e4.
- `max_grad_norm = 1e3`: Pascanu et al. 2013 clip the global norm at a threshold of the order of
  its average value; common recipes clip at 0.5-5 and healthy classifiers show norms of 0.1-10.
  A norm 1e3 is two or more orders of magnitude beyond that: a real explosion, not noise.
- `min_first_last_ratio = 1e-5`: five decades between the first and last layer's gradient
  norms, the regime Glorot & Bengio 2010 show for deep sigmoid networks; healthy LeNet-5,
  ResNet and VGG runs stay within about two decades.
- `min_layer_grad_norm = 1e-8`: below this, lr * g is under float32 resolution (about 1.2e-7 of
  the weight) for any weight larger than 1e-3 at lr <= 1: the layer has stopped learning.
- `vanishing_patience = 20` consecutive steps: a single small-gradient batch is not vanishing.
- divergence: a loss above `divergence_factor = 10` times the mean of the previous
  `divergence_window = 50` finite losses *and* above `divergence_min_loss = 2.5` (just above
  chance level, ln 10 = 2.30): late in training a noisy batch can be 10x a small running mean
  (0.02 -> 0.3) without anything diverging.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Annotated, Literal, TypedDict, get_type_hints

from pydantic import Field

from src.config.types import NonNegativeFloat, Number, PositiveFloat, PositiveInt

KINDS = ("nonfinite", "exploding", "vanishing", "divergence")
Policy = Literal["stop", "continue"]
NonfiniteCount = Literal["tensors", "values"]


@dataclass(frozen=True)
class Thresholds:
    """Event limits; see the module docstring for the defaults' sources. Norms are L2 norms."""

    max_loss: PositiveFloat = 1e4
    max_grad_norm: PositiveFloat = 1e3
    min_first_last_ratio: PositiveFloat = 1e-5
    min_layer_grad_norm: PositiveFloat = 1e-8
    vanishing_patience: PositiveInt = 20
    divergence_window: PositiveInt = 50
    divergence_factor: Annotated[Number, Field(gt=1)] = 10.0  # a spike is a multiple of the running mean
    divergence_min_loss: NonNegativeFloat = 2.5


# The keyword arguments of `Thresholds`, for signatures that pass them on (`**thresholds: Unpack[...]`)
ThresholdSettings = TypedDict("ThresholdSettings", get_type_hints(Thresholds, include_extras=True), total=False)


@dataclass(frozen=True)
class HealthEvent:
    """One line of `events.jsonl`. `value` is what crossed `threshold`; `layer` where one applies."""

    step: int
    kind: str
    value: float
    threshold: float
    layer: str | None = None
    source: str | None = None  # which check fired: loss, gradient, global_norm, first_last_ratio, layer_norm

    def to_json(self) -> str:
        """JSON with non-finite numbers written as strings ("nan", "inf"), which JSON itself lacks."""
        data = {k: (str(v) if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}
        return json.dumps({k: v for k, v in data.items() if v is not None})


class EventDetector:
    """Turns per-step statistics into `HealthEvent`s, keeping the state that spans steps and flushes.

    Args:
        thresholds: the limits.
        layer_labels: labels of the tracked layers in forward order (`03.features.6`).
        param_layers: for each tracked parameter, the label of its layer or its own name
            (biases and norm layers), to say where a non-finite gradient appeared.
    """

    def __init__(self, thresholds: Thresholds, layer_labels: Sequence[str], param_layers: Sequence[str]) -> None:
        self.t = thresholds
        self.layer_labels = list(layer_labels)
        self.param_layers = list(param_layers)
        self.counts = {kind: 0 for kind in KINDS}
        self.events: list[HealthEvent] = []
        self._active: set[tuple[str, str]] = set()  # (kind, source) conditions holding at the last step
        self._ratio_run = 0  # consecutive steps with first/last ratio below the limit
        self._layer_runs = [0] * len(self.layer_labels)  # same, per layer norm
        self._losses: deque[float] = deque(maxlen=self.t.divergence_window)

    def _edge(self, holds: bool, kind: str, source: str, event: HealthEvent | None, out: list[HealthEvent]) -> None:
        key = (kind, source)
        if holds and key not in self._active and event is not None:
            out.append(event)
            self.counts[kind] += 1
        (self._active.add if holds else self._active.discard)(key)

    def update(
        self,
        step: int,
        loss: float | None,
        global_norm: float,
        nonfinite_per_param: Sequence[float],
        layer_norms: Sequence[float],
        first_last_ratio: float,
    ) -> list[HealthEvent]:
        """Events that start at `step` (a list, usually empty). Rows must come in step order."""
        t, out = self.t, []
        bad = [i for i, c in enumerate(nonfinite_per_param) if c > 0]
        loss_bad = loss is not None and not math.isfinite(loss)
        if bad or loss_bad:  # backward runs from the output: the last parameter is where it shows first
            source = "loss" if loss_bad and not bad else "gradient" if not loss_bad else "loss+gradient"
            layer = self.param_layers[bad[-1]] if bad else None
            event = HealthEvent(step, "nonfinite", float(sum(nonfinite_per_param)), 0.0, layer, source)
            self._edge(True, "nonfinite", "any", event, out)
        else:
            self._edge(False, "nonfinite", "any", None, out)

        finite_loss = loss is not None and math.isfinite(loss)
        over = finite_loss and loss > t.max_loss
        self._edge(over, "exploding", "loss", HealthEvent(step, "exploding", loss, t.max_loss, None, "loss")
                   if over else None, out)
        over = math.isfinite(global_norm) and global_norm > t.max_grad_norm
        self._edge(over, "exploding", "global_norm",
                   HealthEvent(step, "exploding", global_norm, t.max_grad_norm, None, "global_norm") if over else None,
                   out)

        below = math.isfinite(first_last_ratio) and first_last_ratio < t.min_first_last_ratio
        self._ratio_run = self._ratio_run + 1 if below else 0
        holds = self._ratio_run >= t.vanishing_patience
        self._edge(holds, "vanishing", "first_last_ratio",
                   HealthEvent(step, "vanishing", first_last_ratio, t.min_first_last_ratio,
                               self.layer_labels[0], "first_last_ratio") if holds else None, out)
        for i, norm in enumerate(layer_norms):
            self._layer_runs[i] = self._layer_runs[i] + 1 if math.isfinite(norm) and norm < t.min_layer_grad_norm else 0
        long_enough = [i for i, run in enumerate(self._layer_runs) if run >= t.vanishing_patience]
        first = long_enough[0] if long_enough else None
        self._edge(first is not None, "vanishing", "layer_norm",
                   HealthEvent(step, "vanishing", float(layer_norms[first]), t.min_layer_grad_norm,
                               self.layer_labels[first], "layer_norm") if first is not None else None, out)

        spike = False
        if finite_loss and len(self._losses) == t.divergence_window:
            mean = sum(self._losses) / len(self._losses)
            spike = loss > t.divergence_factor * mean and loss > t.divergence_min_loss
            self._edge(spike, "divergence", "loss",
                       HealthEvent(step, "divergence", loss, t.divergence_factor * mean, None, "loss")
                       if spike else None, out)
        if finite_loss and not spike:  # a spike stays out of the mean it is judged against
            self._losses.append(float(loss))
        self.events.extend(out)
        return out

    def jsonl(self) -> str:
        """All events so far, one JSON object a line (the `events.jsonl` artifact)."""
        return "".join(e.to_json() + "\n" for e in self.events)

    def summary(self) -> str:
        """`nonfinite:1,exploding:2`, or `none`: the `health.events` tag."""
        return ",".join(f"{k}:{v}" for k, v in self.counts.items() if v) or "none"
