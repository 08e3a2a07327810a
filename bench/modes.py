"""The modes a training step is timed in, one registry entry each.

A mode is the list of callbacks a real Lightning `fit` of the project's `ClassificationModule` gets
(logging into a throwaway MLflow store at the run's cadence, as a run does), or `BARE`: plain PyTorch
with no Lightning and no MLflow, the floor the others are compared with.

Adding an instrument's mode is one entry in `MODES`, named `monitor+<instrument>`, whose factory
builds the monitor with that instrument on at its default schedule, e.g.

    "monitor+signal": monitor(signal_every_n_steps=10),

(the keyword being whatever setting of `GradientHealthMonitor` turns the instrument on). Its row and
its JSON key then appear in every benchmark and in `scripts/gpu_check.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl

CallbackFactory = Callable[[int], list[pl.Callback]]  # log_every_n_steps -> the mode's callbacks
BARE = "bare"


def monitor(**settings: Any) -> CallbackFactory:
    """The gradient-health monitor, flushing at the logging cadence, with `settings` (no plots: they are
    drawn once at the end of a run, not per step)."""

    def build(log_every: int) -> list[pl.Callback]:
        from src.monitor import GradientHealthMonitor

        return [GradientHealthMonitor(every_n_steps=log_every, plots=False, **settings)]

    return build


def nothing(log_every: int) -> list[pl.Callback]:
    return []


MODES: dict[str, CallbackFactory | None] = {
    BARE: None,  # forward, cross-entropy, backward, SGD step on tensors sliced from memory
    "module": nothing,  # ClassificationModule + Trainer + RunLogger (MLflow), no gradient monitoring
    "monitor": monitor(),  # + GradientHealthMonitor (statistics every step, host read every N steps)
    # "monitor+<instrument>": monitor(<setting that turns the instrument on>=<its default schedule>),
    "monitor+forensics": monitor(forensics=True),  # on by default: a snapshot per flush window, batches kept
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
    """Mode names are JSON keys: `bare`, `module`, `monitor`, `monitor+<instrument>` (and the comparisons)."""
    for name in modes:
        if name not in (BARE, "module", "monitor", *COMPARISONS) and not name.startswith("monitor+"):
            raise ValueError(f"mode {name!r}: name it bare, module, monitor or monitor+<instrument>")

