"""The sched group: settings of torch's learning-rate schedulers (stepped once per epoch)."""

from __future__ import annotations

from typing import Annotated, TypedDict

from pydantic import Field

from src.settings.types import NonNegativeFloat, Number, PositiveInt


class CosineAnnealingLR(TypedDict, total=False):
    T_max: PositiveInt | None  # epochs to reach eta_min; None = the run's length (src/training/schedules.py)
    eta_min: NonNegativeFloat  # final learning rate


class StepLR(TypedDict, total=False):
    step_size: PositiveInt  # epochs between decays
    gamma: Annotated[Number, Field(gt=0, le=1)]  # decay factor


SCHEMAS = {
    "torch.optim.lr_scheduler.CosineAnnealingLR": CosineAnnealingLR,
    "torch.optim.lr_scheduler.StepLR": StepLR,
}
