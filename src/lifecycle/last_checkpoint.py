"""Lightning's `ModelCheckpoint` with `last.ckpt` rewritten at every checkpoint check, whatever the top-k did.

Why: Lightning 2.6 writes `last.ckpt` (`save_last=True`) only when the same check saved a top-k file. With the
project's `monitor=val/acc, save_top_k=1` that is only when the accuracy improved: once it plateaus, `last.ckpt`
stops moving. A run that is then killed without its clean stop (SIGKILL, out of memory, a lost node; a signal
writes its own `last.ckpt`, `src/lifecycle/graceful_stop.py`) resumes from its best epoch, possibly hundreds of
thousands of steps back, trains them again and logs them a second time. Seen in the study: a 370,000-step
LeNet-5 run whose `last.ckpt` stayed at step 33,000 while it trained to step 243,749.

`RunCheckpoint` keeps every choice of its parent (which files, when the checks come, the top-k) and adds one
thing: at a check that saved no file at this step, `last.ckpt` is written anyway. Its state in a checkpoint
goes under the parent's key, so checkpoints of either class restore each other's best score and paths.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint


class RunCheckpoint(ModelCheckpoint):
    """`ModelCheckpoint` whose `last.ckpt` is at the step of its newest check (see the module docstring)."""

    def _generate_state_key(self, **kwargs: Any) -> str:
        return f"ModelCheckpoint{kwargs!r}"  # the parent's key (its class name), so old checkpoints restore

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self.keep_last_current(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self.keep_last_current(trainer)

    def keep_last_current(self, trainer: pl.Trainer) -> None:
        """Write `last.ckpt` at this step unless it was just written (or this is no check: sanity, fast_dev_run)."""
        due = self._every_n_epochs >= 1 and (trainer.current_epoch + 1) % self._every_n_epochs == 0
        if self.save_last and due and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
