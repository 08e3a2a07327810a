"""The optim group: settings of torch's optimizers. Other real arguments of an optimizer pass as they are."""

from __future__ import annotations

from typing import Annotated, TypedDict

from pydantic import Field

from src.settings.types import Fraction, NonNegativeFloat, PositiveFloat, UnitInterval


class SGD(TypedDict, total=False):
    lr: PositiveFloat  # learning rate
    momentum: Fraction  # heavy-ball momentum; 1 would never forget a gradient
    dampening: UnitInterval
    nesterov: bool
    weight_decay: NonNegativeFloat  # torch adds wd·θ to every gradient: keep 0 with a weight regularizer
    maximize: bool


class Adam(TypedDict, total=False):
    lr: PositiveFloat
    betas: Annotated[list[Fraction], Field(min_length=2, max_length=2)]  # moment decay rates β1, β2
    eps: PositiveFloat  # denominator guard
    weight_decay: NonNegativeFloat
    amsgrad: bool
    maximize: bool


SCHEMAS = {"torch.optim.SGD": SGD, "torch.optim.Adam": Adam, "torch.optim.AdamW": Adam}
