"""Callbacks that tests inject through the real CLI (`+callbacks.<name>._target_=tests.helpers.<Class>`)."""

from __future__ import annotations

import os
import signal
from typing import Any

import pytorch_lightning as pl
import torch

from src.monitor.verdict import HealthVerdict


class RaiseAtStep(pl.Callback):
    """Raises RuntimeError when training reaches `step` (stage `train`) or at the first test batch (`test`)."""

    def __init__(self, step: int = 2, stage: str = "train") -> None:
        self.step, self.stage = step, stage

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, idx: int) -> None:
        if self.stage == "train" and trainer.global_step >= self.step:
            raise RuntimeError(f"injected failure at step {trainer.global_step}")

    def on_test_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, idx: int,
                            dataloader_idx: int = 0) -> None:
        if self.stage == "test":
            raise RuntimeError("injected failure in test")


class Notes(pl.Callback):
    """Does nothing; takes any settings (`+callbacks.notes.<key>=...`), e.g. to put a secret into the config."""

    def __init__(self, **notes: Any) -> None:
        self.notes = notes


class DivergeAtStep(pl.Callback):
    """Plays a health monitor that detects divergence at `step`: its verdict says so, and it stops training."""

    def __init__(self, step: int = 2) -> None:
        self.step, self.flagged_at = step, None

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if trainer.global_step >= self.step and self.flagged_at is None:
            self.flagged_at, trainer.should_stop = trainer.global_step, True

    def verdict(self) -> HealthVerdict:
        if self.flagged_at is None:
            return HealthVerdict()
        return HealthVerdict(kind="divergence", diverged=True, first_event_step=self.flagged_at)


class SignalAtStep(pl.Callback):
    """Sends `signum` to this very process once training reaches `step` (as Ctrl-C or `kill` would)."""

    def __init__(self, step: int = 3, signum: int = int(signal.SIGINT)) -> None:
        self.step, self.signum, self.sent = step, signum, False

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if not self.sent and trainer.global_step >= self.step:
            self.sent = True
            os.kill(os.getpid(), self.signum)


class GradNormProbe(pl.Callback):
    """Per-layer gradient norms as `grad_norm/<param>` (logged by rank zero), and the largest difference
    between ranks of those norms as `grad/rank_max_abs_diff`: 0 when the statistics are taken on the
    synchronized (all-reduced) gradients."""

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        named = [(n, p.grad) for n, p in pl_module.named_parameters() if p.grad is not None]
        norms = torch.stack([g.detach().norm() for _, g in named])
        gathered = trainer.strategy.all_gather(norms).reshape(-1, len(named))  # (world_size, layers)
        diff = (gathered.max(0).values - gathered.min(0).values).max()
        pl_module.log("grad/rank_max_abs_diff", diff, on_step=True, on_epoch=False)
        pl_module.log("grad/world_size", float(trainer.world_size), on_step=True, on_epoch=False)
        pl_module.log_dict({f"grad_norm/{n}": v for (n, _), v in zip(named, norms, strict=True)},
                           on_step=True, on_epoch=False)
