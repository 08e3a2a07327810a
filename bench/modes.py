"""The modes a training step is timed in, one registry entry each.

A mode is the list of callbacks a real Lightning `fit` of the project's `ClassificationModule` gets
(logging into a throwaway MLflow store at the run's cadence, as a run does), or `BARE`: plain PyTorch
with no Lightning and no MLflow, the floor the others are compared with, or `LIGHTNING`: the bare step
as a minimal `LightningModule` in a `Trainer` with no logger (what Lightning's loop alone adds: the floor
of every mode that trains through Lightning, which the project cannot go below).

`monitor` is the gradient statistics alone (instruments and forensics off); `monitor+<instrument>` adds one
instrument at its default schedule (`instrument(setting)`), `monitor+<instrument>@1` the same at
every step (what one sample costs), `monitor+forensics` adds forensics' snapshot, `monitor+all` the
whole monitor at its defaults. Adding an
instrument's mode is one entry in `MODES`; its row and JSON key then appear in every benchmark and
in `scripts/gpu_check.py`. A schedule longer than the measured steps (sharpness: 2000) is sampled at
most at the first step, inside the warm-up: its amortized cost is the `@1` mode's extra time over
`monitor` divided by the schedule.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl

CallbackFactory = Callable[[int], list[pl.Callback]]  # log_every_n_steps -> the mode's callbacks
BARE = "bare"
LIGHTNING = "lightning"  # the bare step through Lightning's loop alone (`bench/steps.py`, `fit_plain`)


def monitor(**settings: Any) -> CallbackFactory:
    """The gradient-health monitor, flushing at the logging cadence, with `settings` (no plots: they are
    drawn once at the end of a run, not per step)."""

    def build(log_every: int) -> list[pl.Callback]:
        from src.monitor import GradientHealthMonitor

        return [GradientHealthMonitor(every_n_steps=log_every, plots=False, **settings)]

    return build


def nothing(log_every: int) -> list[pl.Callback]:
    return []


INSTRUMENTS_OFF = {  # the statistics alone: every instrument off, forensics (on by default) too
    "signal_every_n_steps": 0, "units_every_n_steps": 0, "sharpness_every_n_steps": 0, "forensics": False,
}


def instrument(setting: str, every: int | None = None) -> CallbackFactory:
    """The statistics plus one instrument: at its default schedule (`every` None) or every `every` steps."""
    import inspect

    from src.monitor import GradientHealthMonitor

    default = inspect.signature(GradientHealthMonitor).parameters[setting].default
    return monitor(**{**INSTRUMENTS_OFF, setting: default if every is None else every})


MODES: dict[str, CallbackFactory | None] = {
    BARE: None,  # forward, cross-entropy, backward, SGD step on tensors sliced from memory
    LIGHTNING: None,  # the same step as a minimal LightningModule in a Trainer: no logger, no metric, no callback
    "module": nothing,  # ClassificationModule + Trainer + RunLogger (MLflow), no gradient monitoring
    "monitor": monitor(**INSTRUMENTS_OFF),  # + GradientHealthMonitor's statistics (every step, host read every N)
    "monitor+signal": instrument("signal_every_n_steps"),  # + back-propagated signal at its default schedule
    "monitor+signal@1": instrument("signal_every_n_steps", 1),  # ... at every step
    "monitor+units": instrument("units_every_n_steps"),  # + dead/saturated units, activation RMS
    "monitor+units@1": instrument("units_every_n_steps", 1),
    "monitor+sharpness": instrument("sharpness_every_n_steps"),  # + λ_max probe (default: rarer than a window)
    "monitor+sharpness@1": instrument("sharpness_every_n_steps", 1),  # a probe every step: one probe's cost
    "monitor+all": monitor(),  # the whole monitor at its defaults, every instrument on
    "monitor+forensics": monitor(**{**INSTRUMENTS_OFF, "forensics": True}),  # + a snapshot per flush window
}


class LightningGradNorm(pl.Callback):
    """For comparison: Lightning's `grad_norm` utility and `log_dict` every step (a host read per parameter)."""

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        from pytorch_lightning.utilities import grad_norm

        pl_module.log_dict(grad_norm(pl_module, norm_type=2))


class ItemLoop(pl.Callback):
    """For comparison: one `.norm().item()` per parameter every step, sent to the logger every N steps."""

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        values = {f"grad_norm/{n}": p.grad.norm().item() for n, p in pl_module.named_parameters() if p.grad is not None}
        if (trainer.global_step + 1) % trainer.log_every_n_steps == 0:
            trainer.logger.log_metrics(values, step=trainer.global_step)


COMPARISONS: dict[str, CallbackFactory] = {  # `--compare`: other ways to get gradient norms, for the docs' table
    "lightning_grad_norm": lambda log_every: [LightningGradNorm()],
    "item_loop": lambda log_every: [ItemLoop()],
}


def check_names(modes: dict[str, Any]) -> None:
    """Mode names are JSON keys: `bare`, `lightning`, `module`, `monitor`, `monitor+<instrument>` (and the
    comparisons)."""
    for name in modes:
        if name not in (BARE, LIGHTNING, "module", "monitor", *COMPARISONS) and not name.startswith("monitor+"):
            raise ValueError(f"mode {name!r}: name it bare, lightning, module, monitor or monitor+<instrument>")

