"""The detectors' limits, in one place, each with its source and units (`conf/monitor/default.yaml` repeats them).

Every limit on a gradient is on a scale-free measure: the relative data gradient ‖g‖/‖θ‖ (of one
layer, or of all parameters together), never on a raw norm, which grows with the layer's size.
Every limit on the loss is on the data loss (no penalty), against ln C, the loss of a uniform guess
over C classes (2.30 for 10). "Sustained" means held for a patience of consecutive optimizer steps
(steps the AMP grad scaler skipped do not count, nor break a run). The margins against the
calibration zoo (`tests/test_calibration_zoo.py`, table in `docs/gradient_health.md`) are stated
beside each default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, TypedDict, get_type_hints

from pydantic import Field

from src.config.types import NonNegativeFloat, Number, OpenFraction, PositiveFloat, PositiveInt


@dataclass(frozen=True)
class Thresholds:
    """Event limits. Units: nats for losses, ratios ‖g‖/‖θ‖ for gradients, optimizer steps for patience.

    nonfinite (no patience: a NaN/Inf is a fact, not a trend):
      amp_skip_patience = 16 consecutive steps skipped by the grad scaler. Each skip halves its scale;
        from torch's initial 2^16 that many skips leave a scale of 1, i.e. gradients that overflow
        fp16 unscaled: a blow-up, not the scaler calibrating (healthy fp16 runs skip a few steps at
        the start, and then about one in `growth_interval` = 2000).
      amp_min_scale = 1.0: the same limit read on the scale itself at each flush, for skips that are
        frequent without being consecutive.
    exploding (sustained):
      max_loss = 1e4: the data loss; the blog post that started the project called a loss above
        1e4 "exploding" (a 10-class cross-entropy starts at 2.30).
      max_global_rel = 1e2: the data gradient 100 times the weights it updates. An SGD step of
        learning rate η moves the weights by η·‖g‖/‖θ‖ of themselves; at 1e2 any η above 0.01
        replaces the weights every step. Healthy zoo runs stay below 3 (LeNet-5, ResNet-152,
        VGG-19-bn), margin > 30x; the exploding zoo nets pass 1e2 within a few steps.
      exploding_patience = 5 steps.
    vanishing (sustained; a property of depth):
      vanishing_rel = 1e-5: the input-side layer's relative data gradient; under SGD with η ≤ 1 it
        moves by at most 1e-5 of itself per step (the rule of thumb for a learning layer is ~1e-3,
        Karpathy's update/weight ratio), and
      vanishing_ratio = 1e-3: ... at most this fraction of the output-side layer's, i.e. the
        gradient decays toward the input by three decades or more (Glorot & Bengio 2010 show such
        decay for deep sigmoid nets). Both must hold: a last layer whose gradient grows is not a
        first layer whose gradient vanishes, and a network whose gradients are uniformly tiny is
        `stalled`, not vanishing.
      vanishing_patience = 20 steps.
    stalled (sustained; how a dead network looks):
      stall_loss_tolerance = 0.05: the data loss within 5% of ln C (2.30 ± 0.12 nats for 10 classes), and
      stall_rel = 1e-4: the relative data gradient over all parameters below this (healthy zoo runs
        at chance level, i.e. their first steps, have 1e-2 or more),
      stall_patience = 50 steps (a net at initialization sits at ln C too, with a large gradient).
    divergence (sustained, after a warm-up; after Lightning's `SpikeDetection`):
      divergence_warmup = 50 judged steps before any judgement (early losses fall fast);
      divergence_window = 50: the reference is the mean of the last 50 finite losses outside an excursion;
      divergence_factor = 3.0 and divergence_min_increase = 0.5 nats: a step is an excursion when its
        loss is above 3x the reference *and* 0.5 nats above it (noise late in training, 0.02 -> 0.3,
        stays under the second), which makes a collapse to ln C from a trained 0.1 one;
      divergence_patience = 10 consecutive excursion steps: a noisy batch is one step.
    """

    amp_skip_patience: PositiveInt = 16
    amp_min_scale: NonNegativeFloat = 1.0
    max_loss: PositiveFloat = 1e4
    max_global_rel: PositiveFloat = 1e2
    exploding_patience: PositiveInt = 5
    vanishing_rel: PositiveFloat = 1e-7
    vanishing_ratio: PositiveFloat = 1e-6
    vanishing_patience: PositiveInt = 20
    stall_loss_tolerance: OpenFraction = 0.05
    stall_rel: PositiveFloat = 1e-5
    stall_patience: PositiveInt = 50
    divergence_warmup: PositiveInt = 50
    divergence_window: PositiveInt = 50
    divergence_factor: Annotated[Number, Field(gt=1)] = 3.0
    divergence_min_increase: NonNegativeFloat = 0.5
    divergence_patience: PositiveInt = 10


# The keyword arguments of `Thresholds`, for signatures that pass them on (`**thresholds: Unpack[...]`)
ThresholdSettings = TypedDict("ThresholdSettings", get_type_hints(Thresholds, include_extras=True), total=False)
