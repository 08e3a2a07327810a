"""Hand-made monitor steps for the detectors' unit tests: a healthy LeNet-5 step with some values changed,
and the events a detector fires over a sequence of them."""

from __future__ import annotations

import math

from src.monitor.detectors import StepView
from src.monitor.events import HealthEvent

LN10 = math.log(10)


def view(step: int, **values: object) -> StepView:
    """A healthy step (LeNet-5 early in training) with `values` changed."""
    base = {"loss": 1.0, "global_norm": 1.0, "global_rel": 0.05, "first_rel": 0.03, "last_rel": 0.1,
            "median_layer_rel": 0.05, "chance_loss": LN10, "first_layer": "00.a"}
    return StepView(step=step, **{**base, **values})


def fired(detector, steps) -> list[HealthEvent]:  # noqa: ANN001
    return [e for v in steps if (e := detector.observe(v)) is not None]
