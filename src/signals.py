"""SIGINT and SIGTERM end a run cleanly: stop at a step boundary, save `last.ckpt`, mark it KILLED.

How the pieces meet Lightning 2.x:
- Lightning installs its own SIGTERM handler during `fit` (it chains ours) and raises
  `SIGTERMException` after the current batch; with several ranks it broadcasts the stop from rank 0.
- SIGINT has no such path in Lightning (Ctrl-C raises KeyboardInterrupt mid-step, Lightning then
  calls `sys.exit(1)`), so the first SIGINT only records the request and `GracefulStop` raises
  `RunInterrupted` at the start of the next batch, where the state is exactly "N steps done".
- On either stop `GracefulStop.on_exception` saves `last.ckpt` beside the run's checkpoints.
- A second signal, or one outside `fit`, raises KeyboardInterrupt at once (no new checkpoint).
`tracked_run` maps all of these (see `is_interrupt`) to status KILLED, `outcome=interrupted`.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.utilities.exceptions import SIGTERMException

HANDLED = (signal.SIGINT, signal.SIGTERM)


class RunInterrupted(Exception):
    """Raised at a step boundary after SIGINT/SIGTERM asked the run to stop."""


class StopRequest:
    """The signal state of this process: which signal asked to stop, and whether `fit` is running."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.fitting = False

    def handler(self, signum: int, frame: FrameType | None) -> None:
        first = self.signum is None
        self.signum = signum
        if not (first and self.fitting):
            raise KeyboardInterrupt(f"{signal.Signals(signum).name} received")


STOP = StopRequest()


@contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """Install the SIGINT/SIGTERM handlers for the life of a tracked run; restore the old ones after."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield STOP
        return
    STOP.signum, STOP.fitting = None, False
    previous = {s: signal.getsignal(s) for s in HANDLED}
    for s in HANDLED:
        signal.signal(s, STOP.handler)
    try:
        yield STOP
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def is_interrupt(exc: BaseException) -> bool:
    """Did this exception end the run because someone asked it to stop (not because something broke)?"""
    if isinstance(exc, (KeyboardInterrupt, RunInterrupted, SIGTERMException)):
        return True
    return isinstance(exc, SystemExit) and STOP.signum is not None  # Lightning's sys.exit(1) after Ctrl-C


def exit_code_if_interrupted(exc: BaseException) -> int | None:
    """The shell's exit status for a run stopped by a signal (128 + signal number), else None."""
    if not is_interrupt(exc):
        return None
    return 128 + int(STOP.signum or signal.SIGINT)


class GracefulStop(pl.Callback):
    """Stops training at the next batch after SIGINT/SIGTERM and saves `last.ckpt` for `resume=`.

    Args:
        checkpoint_dir: where `last.ckpt` goes when the trainer has no ModelCheckpoint to ask.
    """

    def __init__(self, checkpoint_dir: str | Path) -> None:
        self.checkpoint_dir = Path(checkpoint_dir)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        STOP.fitting = True

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        STOP.fitting = False

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, idx: int) -> None:
        if STOP.signum is not None and trainer.world_size == 1:  # ranks > 1 stop through Lightning's broadcast
            raise RunInterrupted(f"{signal.Signals(STOP.signum).name} received: stopping before step "
                                 f"{trainer.global_step + 1}")

    def last_checkpoint_path(self, trainer: pl.Trainer) -> Path:
        callback = trainer.checkpoint_callback
        folder = Path(callback.dirpath) if callback is not None and callback.dirpath else self.checkpoint_dir
        return folder / "last.ckpt"

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        STOP.fitting = False
        if isinstance(exception, (RunInterrupted, SIGTERMException)) and trainer.global_step > 0:
            path = self.last_checkpoint_path(trainer)
            trainer.save_checkpoint(path)
            if trainer.is_global_zero:
                print(f"\nStopped by {type(exception).__name__}; saved {path} at step {trainer.global_step}")
