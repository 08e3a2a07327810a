"""The terminal's progress bar: Lightning's rich bar, updated a few times a second instead of after every batch.

Lightning's `RichProgressBar` updates its task, re-reads the progress-bar metrics and asks for a redraw
after every training batch, and its redraw thread then takes CPU from training: in a terminal it took a
LeNet-5 step from 8.4 to 10.6 ms (one thread, `docs/performance.md`), this bar to 8.45 ms. This bar does
the same work at most `refresh_per_second` times a second, and always on an epoch's last batch, so
what it shows is at most a fraction of a second old; a slow model (ResNet-152 on a CPU) still gets an
update after every batch. `trainer.enable_progress_bar=false` removes it (`src/training/builders.py`).
"""

from __future__ import annotations

import time
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import RichProgressBar

from src.settings.signature import checked
from src.settings.types import PositiveFloat


class ThrottledRichProgressBar(RichProgressBar):
    """Lightning's rich progress bar, updated at most `refresh_per_second` times a second during training.

    Args:
        refresh_per_second: updates (and redraws) of the bar per second, at most; also the rate of
            rich's redraw thread.
        leave: keep each epoch's finished bar on screen.
    """

    @checked("callbacks.progress_bar")
    def __init__(self, refresh_per_second: PositiveFloat = 4.0, leave: bool = False) -> None:
        super().__init__(refresh_rate=max(1, round(refresh_per_second)), leave=leave)
        self.min_interval_s = 1.0 / refresh_per_second
        self._last_update = float("-inf")

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        now = time.monotonic()
        last_batch = batch_idx + 1 >= self.total_train_batches or trainer.should_stop or (
            0 <= trainer.max_steps <= trainer.global_step
        )
        if now - self._last_update < self.min_interval_s and not last_batch:
            return
        self._last_update = now
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
