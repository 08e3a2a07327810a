"""A store that stops taking the run's metric rows (its disk full, its lock held too long) stops the training at the
next step, with a checkpoint there and every row the store refused kept beside it.

Why: the logger writes on a background thread (`src/background.py`), so a refused write used to surface only at
the end of `fit`: the run trained on for as long as it had left, its rows went nowhere, the checkpoint at the end
was ahead of every step the store held, and the closing line said "nothing was trained". Now:

1. `on_train_batch_start` asks the job's `RunLogger` whether a write failed (no waiting) and raises
   `StoreWriteFailed` there: a step boundary, as a stop by signal is (`graceful_stop.py`);
2. `on_exception` (for that, or for any failure) sends the rows still queued; when the store refused any of
   them (it may first learn of a full disk there: rows wait up to `rows_interval_s`, and a short run can end
   in that time) it saves `last.ckpt` at that step and moves the refused rows into `unsent_metrics.jsonl`
   beside it (`unsent_rows.py`); `resume=<run_id>` writes them into the run first, so each step's rows are in
   the store exactly once;
3. the run context then closes the run FAILED if the store takes that write, else leaves it RUNNING for the
   reaper (KILLED, `outcome=lost`, at the next start or `python -m src.reap`), and the job ends with the one
   line `stopped_line` makes (exit status 1).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from src.lifecycle.unsent_rows import keep_unsent

log = logging.getLogger(__name__)


class StoreWriteFailed(RuntimeError):
    """The store refused a metric write; training stopped at a step boundary (the original error is the cause)."""


def run_logger(trainer: pl.Trainer) -> Any:
    """The trainer's `RunLogger` (the one with `store_failure`), or None."""
    return next((lg for lg in trainer.loggers if hasattr(lg, "take_unsent")), None)


class StoreWriteStop(pl.Callback):
    """Stops training at the step after the store refused a write; keeps the checkpoint and the refused rows.

    Args:
        checkpoint_dir: where `last.ckpt` and `unsent_metrics.jsonl` go when the trainer has no ModelCheckpoint.
    """

    def __init__(self, checkpoint_dir: str | Path) -> None:
        self.checkpoint_dir = Path(checkpoint_dir)
        self.stopped_at: int | None = None  # the global step of the checkpoint saved after a refused write
        self.kept: tuple[int, Path] | None = None  # (rows, file) moved beside it

    def folder(self, trainer: pl.Trainer) -> Path:
        callback = trainer.checkpoint_callback
        return Path(callback.dirpath) if callback is not None and callback.dirpath else self.checkpoint_dir

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, idx: int) -> None:
        logger = run_logger(trainer)
        failure = logger.store_failure if logger is not None else None
        if failure is not None:
            raise StoreWriteFailed(f"the MLflow store refused the run's metrics before step "
                                   f"{trainer.global_step + 1}: {str(failure).splitlines()[0]}") from failure

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        logger = run_logger(trainer)
        if logger is None or not trainer.is_global_zero:
            return
        refused = isinstance(exception, StoreWriteFailed) or logger.store_failure is not None
        rows = logger.take_unsent()  # sends what is queued; the rows the store refuses now come back too
        if not (refused or rows):
            return  # another failure, and the store took every row
        folder = self.folder(trainer)
        if trainer.global_step > 0 and not trainer.fit_loop.done:  # once fit is done, GracefulStop saves there
            trainer.save_checkpoint(folder / "last.ckpt")
        self.stopped_at = trainer.global_step
        path = keep_unsent(folder, rows)
        self.kept = (len(rows), path) if path else None
        log.warning("The MLflow store refused the run's writes; stopped at step %d with %s%s", trainer.global_step,
                    folder / "last.ckpt", f" and {len(rows)} metric rows kept in {path}" if path else "")


STORE_REFUSALS = ("database or disk is full", "database is locked")  # sqlite's words for the store's own faults


def store_refused(exc: BaseException | None) -> bool:
    """Did the store refuse a write (`StoreWriteFailed`, or sqlite's full or locked database) in `exc`'s chain?"""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, StoreWriteFailed) or any(text in str(exc) for text in STORE_REFUSALS):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def stopped_line(cause: BaseException, run_id: str, store: str, closed: bool, stop: StoreWriteStop | None) -> str:
    """The job's one line after the store refused its writes: why, where the run stands, what to do."""
    from src.lifecycle.exits import disk_full_error

    full = disk_full_error(cause) is not None
    why = "its disk is full" if full else f"it refused a write ({str(cause).splitlines()[0][:160]})"
    step = f" at step {stop.stopped_at}" if stop is not None and stop.stopped_at is not None else ""
    kept = f"; {stop.kept[0]} metric rows it did not take are kept in {stop.kept[1]}" if stop and stop.kept else ""
    state = (f"run {run_id} stopped{step} and is FAILED (outcome=failed)" if closed else
             f"run {run_id} stopped{step} and is left RUNNING: the store could not record its end either; the reaper "
             "closes it (KILLED, outcome=lost) at the next start or `python -m src.reap`")
    fix = "free space on that disk" if full else "make the store writable again"
    first = "the kept rows are written first; " if kept else ""
    return (f"gradreg: the MLflow store {store} cannot be written ({why}): {state}{kept}. To go on, {fix}, then: "
            f"python -m src.train resume={run_id} ({first}the checkpoint continues from there)")
