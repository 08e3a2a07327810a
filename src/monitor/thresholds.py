"""The detectors' limits, in one place, each with its source and units (`conf/monitor/default.yaml` repeats them).

Every limit on a gradient is on a scale-free measure: the relative data gradient ‖g‖/‖θ‖ (of one
layer, or of all parameters together), never on a raw norm, which grows with the layer's size.
Every limit on the loss is on the data loss (no penalty), against ln C, the loss of a uniform guess
over C classes (2.30 for 10). "Sustained" means held for a patience counted in optimizer steps, on
every step judged in between (steps the AMP grad scaler skipped, and steps without an instrument sample,
are not judged and do not break a run): a detector reading sparse samples waits as long as one reading
every step, never longer because its samples are sparse (`detectors/base.py::Sustained`). The margins against the
calibration zoo (`tests/test_calibration_zoo.py`, table in `docs/gradient_health.md`) are stated
beside each default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, TypedDict, get_type_hints

from pydantic import Field

from src.settings.types import NonNegativeFloat, Number, OpenFraction, PositiveFloat, PositiveInt


@dataclass(frozen=True)
class Thresholds:
    """Event limits. Units: nats for losses, ratios ‖g‖/‖θ‖ for gradients, optimizer steps for patience.
    "Zoo" margins: healthy zoo runs (LeNet-5, a Kaiming MLP, VGG-19-bn, ResNet-152, with and without
    L1/L2/Elastic Net) against the failing ones, on the measure each limit reads.

    nonfinite (no patience: a NaN/Inf is a fact, not a trend):
      amp_skip_patience = 16 consecutive steps skipped by the grad scaler. Each skip halves its scale;
        from torch's initial 2^16 that many leave a scale of 1, i.e. gradients that overflow fp16
        unscaled: a blow-up, not the scaler calibrating (the fp16 test run skips 6, then none).
      amp_min_scale = 1.0: the same limit read on the scale itself at each flush, for skips that are
        frequent without being consecutive.
    exploding (sustained):
      max_loss = 1e4: the data loss; the blog post that started the project called a loss above 1e4
        "exploding" (a 10-class cross-entropy starts at 2.30; healthy zoo runs never pass 3.7).
      max_global_rel = 1e2: the data gradient 100 times the weights it updates; an SGD step moves the
        weights by η·‖g‖/‖θ‖ of themselves, so above 1e2 any η > 0.01 replaces them every step. Zoo:
        healthy runs at most 7.6 (ResNet-152's first step), 13x below; exploding ones 9e4 and more.
      exploding_patience = 5 steps.
    vanishing (sustained; a property of depth), both must hold:
      vanishing_rel = 1e-7: the input-side layer's relative data gradient: an SGD step with η ≤ 1
        changes it by less than float32's resolution (1.2e-7) relative to itself — it cannot learn.
        Zoo: healthy runs at least 2.4e-5 (ResNet-152's conv1 behind batch norm), 240x above;
        vanishing ones (deep sigmoid, tanh with a tiny init) 5e-18 to 4e-13;
      vanishing_ratio = 1e-6: ... and that much below the output-side layer's (six decades of decay
        toward the input, as Glorot & Bengio 2010 show for deep sigmoid nets). Zoo: healthy at least
        2.3e-5 (ResNet-152), 23x above; vanishing ones 1e-17 to 1e-10. A growing last layer cannot
        make the first condition true; uniformly tiny gradients do not make the second: `stalled`.
      vanishing_patience = 20 steps.
      or, from the back-propagated signal (`signal/first_last_ratio`, when that instrument is on):
      vanishing_signal_ratio = 1e-8: the input-side layer's ‖∂L/∂z‖ RMS below this fraction of the
        output-side layer's — eight decades of δ itself, which the weight gradient can hide (g = δ·aᵀ:
        a shrinking forward signal cancels it). Zoo: healthy runs at least 6.6e-4 (ResNet-152 after
        its first steps, LeNet-5 9e-4 at step 0), 66,000x above; vanishing ones (deep sigmoid, tanh
        with a tiny init) 3e-18 to 3e-14; the dying plain VGG-19 at width 1/8 sits at 2e-7 to 5e-7 in its
        first 80 steps, above the limit: its first sustained problem stays `stalled` (calibrated), its
        signal is in the metrics. A ratio of exactly 0 is not vanishing but a cut (dead ReLUs:
        `dead_units`, `stalled`), so it is not judged;
      vanishing_signal_patience = 20 steps of signal samples (3 samples at the default schedule of 10).
    dead_units (sustained over the unit-health instrument's samples):
      dead_fraction = 0.9: some layer's ReLU units are zero for every example of the batch for more
        than 90% of its units (`dead/max`). Zoo: healthy runs at most 0.67 (ResNet-152 at width 1/16),
        0.44 (VGG-19-bn); ReLUs switched off 1.0; plain VGG-19 climbs to 0.92 by step 60;
      dead_patience = 40 steps of unit-health samples (5 samples at the default schedule of 10, as before
        patience was counted in steps). A dead layer also cuts the gradient below it to exactly 0, which
        is never read as `vanishing` (a zero is a fact, not a small ratio), so `dead_units` names it.
    zeroed_weights (sustained):
      zeroed_patience = 10 steps with some layer's ‖θ‖ exactly 0 (a layer of exact zeros is a fact, not
        noise; 10 steps say a regularizer keeps it there rather than one step passing through zero).
    unstable (sustained over the sharpness probes):
      unstable_patience = 50 steps of probes with `sharpness/stability` > 1 (λ_max > 2/η; Adam: the
        preconditioned form): 3 probes at the study's schedule of 25 (as before patience was counted in
        steps), 2 at the default schedule of 2000 — never one probe, so the edge of stability's oscillation
        around the line is not one. Only converged probes are judged.
    stalled (sustained; how a dead network looks), both must hold:
      stall_loss_tolerance = 0.05: the data loss within 5% of ln C (2.30 ± 0.12 nats for 10 classes);
      stall_rel = 1e-5: the median layer's relative data gradient below this. Zoo: healthy runs at
        chance level (their first steps; VGG-19-bn for 170 steps) at least 2.4e-4, 24x above; dead
        ones (plain VGG-19 at width 1/8, ReLUs switched off) 1.1e-6 and below, 9x under.
      stall_patience = 50 steps (a net at initialization sits at ln C too, with a large gradient).
    divergence (sustained, after a warm-up; after Lightning's `SpikeDetection`):
      divergence_warmup = 50 finite losses, during which the reference is the lowest loss so far (early
        losses fall fast and say little about each other; a loss that rises above its own best by the
        factor below is rising whatever its level: an over-confident init starting at 30 nats and falling
        is not diverging);
      divergence_window = 50: then the reference is the mean of the last 50 finite losses outside excursions;
      divergence_factor = 3.0 and divergence_min_increase = 0.5 nats: a step is an excursion when its loss
        is above 3x the reference *and* 0.5 nats above it (noise late in training, 0.02 -> 0.3, stays
        under the second), which makes a collapse to ln C from a trained 0.1 one;
      divergence_patience = 10 consecutive excursion steps: a noisy batch is one step. Zoo: LeNet-5 at
        SGD lr 20 (loss 2.3 -> ~900, tanh saturated, no NaN) fires at step 11; no healthy run fires.
    plateau (sustained; "not learning", where no other detector explains it), all must hold:
      plateau_margin = 0.1: the mean data loss over the window above (1 − 0.1)·ln C (2.07 nats for 10
        classes): the net has learned less than a tenth of what separates a uniform guess from nothing;
      plateau_window = 100 steps of losses, whose second half's mean is ...
      plateau_min_drop = 0.01: ... less than 0.01·ln C (0.023 nats for 10 classes) below the first
        half's: no downward trend. Zoo (`scripts/plateau_margins.py`): the slow learner
        (`mlp-relu-kaiming-small-lr`, SGD 3e-4) drops at least 0.058 nats per half window while near
        chance, 2.5x above; the stuck sigmoid LeNet-5 (`lenet5-sigmoid-2000`) never has a window mean
        below 2.305 (the margin is 2.07) and, once at chance, drops at most 0.011, 2x below;
      plateau_patience = 200 steps: the earliest event is at step 298 (window + patience − 1); the
        batch-normed VGG-19 that sits at chance for 170 steps before it learns must not fire.
    """

    amp_skip_patience: PositiveInt = 16
    amp_min_scale: NonNegativeFloat = 1.0
    max_loss: PositiveFloat = 1e4
    max_global_rel: PositiveFloat = 1e2
    exploding_patience: PositiveInt = 5
    vanishing_rel: PositiveFloat = 1e-7
    vanishing_ratio: PositiveFloat = 1e-6
    vanishing_patience: PositiveInt = 20
    vanishing_signal_ratio: PositiveFloat = 1e-8
    vanishing_signal_patience: PositiveInt = 20
    dead_fraction: OpenFraction = 0.9
    dead_patience: PositiveInt = 40
    unstable_patience: PositiveInt = 50
    stall_loss_tolerance: OpenFraction = 0.05
    stall_rel: PositiveFloat = 1e-5
    stall_patience: PositiveInt = 50
    divergence_warmup: PositiveInt = 50
    divergence_window: PositiveInt = 50
    divergence_factor: Annotated[Number, Field(gt=1)] = 3.0
    divergence_min_increase: NonNegativeFloat = 0.5
    divergence_patience: PositiveInt = 10
    zeroed_patience: PositiveInt = 10
    plateau_margin: OpenFraction = 0.1
    plateau_window: Annotated[int, Field(ge=2)] = 100
    plateau_min_drop: OpenFraction = 0.01
    plateau_patience: PositiveInt = 200


# The keyword arguments of `Thresholds`, for signatures that pass them on (`**thresholds: Unpack[...]`)
ThresholdSettings = TypedDict("ThresholdSettings", get_type_hints(Thresholds, include_extras=True), total=False)
