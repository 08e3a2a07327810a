"""The Lightning side of a clean stop (see `src/lifecycle/signals.py`): raise at a step boundary, save `last.ckpt`.

Also at the normal end of training: Lightning's `ModelCheckpoint` saves `last.ckpt` when it checkpoints
(after validation), so a run that ends on `max_steps` mid-epoch would leave a `last.ckpt` some steps
behind, and `resume=<run_id>` of that finished run would train (and log) those steps again.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.utilities.exceptions import SIGTERMException

from src.lifecycle.signals import STOP, RunInterrupted

log = logging.getLogger(__name__)


class GracefulStop(pl.Callback):
    """Stops training at the next batch after SIGINT/SIGTERM and saves `last.ckpt` for `resume=`.

    Args:
        checkpoint_dir: where `last.ckpt` goes when the trainer has no ModelCheckpoint to ask.
    """

    def __init__(self, checkpoint_dir: str | Path) -> None:
        self.checkpoint_dir = Path(checkpoint_dir)
        self.saved_step = -1  # global step of the newest checkpoint this trainer wrote
        self.stop_saved_step = -1  # global step of the last.ckpt written because a stop was asked

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        self.saved_step = trainer.global_step

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """`last.ckpt` at the step training ended, unless a checkpoint was just written at that step."""
        if trainer.global_step > 0 and trainer.global_step != self.saved_step:
            trainer.save_checkpoint(self.last_checkpoint_path(trainer))

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        STOP.fitting = True

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        STOP.fitting = False

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, idx: int) -> None:
        if STOP.signum is not None and trainer.world_size == 1:  # ranks > 1 stop through Lightning's broadcast
            self.save_on_stop(trainer)
            raise RunInterrupted(f"{signal.Signals(STOP.signum).name} received: stopping before step "
                                 f"{trainer.global_step + 1}")

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           idx: int) -> None:
        """SIGTERM during this step: Lightning raises `SIGTERMException` once the batch has ended; `last.ckpt` is
        written here, first, not after the other callbacks' end-of-run work in `on_exception` (the monitor's
        record and figures take seconds), since SLURM's SIGKILL follows its SIGTERM after `KillWait`."""
        if STOP.signum is not None and trainer.world_size == 1 and trainer.received_sigterm:
            self.save_on_stop(trainer)

    def save_on_stop(self, trainer: pl.Trainer) -> None:
        """`last.ckpt` at the step where a stop was asked (once per step)."""
        if trainer.global_step == 0 or self.stop_saved_step == trainer.global_step:
            return
        path = self.last_checkpoint_path(trainer)
        trainer.save_checkpoint(path)
        self.stop_saved_step = trainer.global_step
        log.warning("Stopping (%s): saved %s at step %d", signal.Signals(STOP.signum or signal.SIGTERM).name, path,
                    trainer.global_step)

    def last_checkpoint_path(self, trainer: pl.Trainer) -> Path:
        callback = trainer.checkpoint_callback
        folder = Path(callback.dirpath) if callback is not None and callback.dirpath else self.checkpoint_dir
        return folder / "last.ckpt"

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        """`last.ckpt` after a stop by signal, and after a failure once training had ended: an end-of-training
        hook that raises (another callback's `on_train_end`, run before this one's) must not leave `last.ckpt`
        behind the steps the run logged, or a resume would train and log them again."""
        STOP.fitting = False
        if trainer.global_step == 0:
            return
        path = self.last_checkpoint_path(trainer)
        if isinstance(exception, (RunInterrupted, SIGTERMException)):
            if self.stop_saved_step == trainer.global_step:
                return  # written when the stop was seen (`save_on_stop`)
            trainer.save_checkpoint(path)
            if trainer.is_global_zero:
                log.warning("Stopped by %s; saved %s at step %d", type(exception).__name__, path, trainer.global_step)
        elif trainer.world_size == 1 and trainer.fit_loop.done and trainer.global_step != self.saved_step:
            trainer.save_checkpoint(path)
            log.warning("Training had ended at step %d when %s was raised; saved %s there", trainer.global_step,
                        type(exception).__name__, path)
