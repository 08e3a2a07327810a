"""Callbacks that tests inject through the real CLI (`+callbacks.<name>._target_=tests.helpers.<Class>`)."""

from __future__ import annotations

import os
import signal
import time
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
    """Sends `signum` to this very process once training reaches `step` (as Ctrl-C, `kill` or the OOM killer would).

    `signum=0` sends nothing (a sweep picks the signal per job). `first_attempt_only`: only in a run
    that started from step 0, so that `resume=<run_id>` alone (which restores this callback) finishes.
    `after_siblings_s`: before a SIGKILL, wait up to that many seconds until every other job of the
    sweep has ended, so that it hits one job (joblib's pool kills its other workers when one dies).
    """

    def __init__(self, step: int = 3, signum: int = int(signal.SIGINT), first_attempt_only: bool = False,
                 after_siblings_s: float = 0.0) -> None:
        self.step, self.signum, self.sent = step, signum, False
        self.first_attempt_only, self.after_siblings_s = first_attempt_only, after_siblings_s
        self.fresh = True

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.fresh = trainer.global_step == 0

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if self.sent or trainer.global_step < self.step or not self.signum:
            return
        if self.first_attempt_only and not self.fresh:
            return
        self.sent = True
        if self.after_siblings_s and self.signum == signal.SIGKILL:  # other signals stop this job alone
            wait_for_siblings(trainer, self.after_siblings_s)
        os.kill(os.getpid(), self.signum)


def wait_for_siblings(trainer: pl.Trainer, timeout_s: float) -> None:
    """Wait until every other job of this run's sweep has ended (or `timeout_s` passed).

    "Ended", not "not RUNNING": a sibling still importing in its worker has no run yet.
    """
    logger = trainer.logger
    client, run_id = logger.experiment, logger.run_id
    parent = client.get_run(run_id).data.tags.get("mlflow.parentRunId")
    if not parent:
        return
    others = int(client.get_run(parent).data.tags.get("sweep_planned_jobs", "1")) - 1
    experiments = [e.experiment_id for e in client.search_experiments()]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        runs = client.search_runs(experiments, f"tags.`mlflow.parentRunId` = '{parent}'")
        if sum(r.info.run_id != run_id and r.info.status != "RUNNING" for r in runs) >= others:
            return
        time.sleep(0.5)


class FillDiskAtStep(pl.Callback):
    """Fills the file system of `path` (a ballast file, written until ENOSPC) once training reaches `step`."""

    def __init__(self, path: str, step: int = 1) -> None:
        self.path, self.step, self.done = path, step, False

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if self.done or trainer.global_step < self.step:
            return
        self.done = True
        block = b"\0" * 65536
        with open(os.path.join(self.path, "ballast.bin"), "wb", buffering=0) as handle:
            try:
                while True:
                    handle.write(block)
            except OSError:
                pass
            for size in (4096, 512, 1):  # fill the last partial block too
                try:
                    while True:
                        handle.write(b"\0" * size)
                except OSError:
                    continue


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
