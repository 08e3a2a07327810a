"""Callbacks the fault tests inject through the real CLI: `+callbacks.<name>._target_=tests.fault_probes.<Class>`."""

from __future__ import annotations

import pytorch_lightning as pl


class RaiseAtTrainEnd(pl.Callback):
    """Raises in `on_train_end` (before the lifecycle's own hooks), as an end-of-training hook on a full disk does,
    while the global step is at most `until_step`."""

    def __init__(self, until_step: int) -> None:
        self.until_step = until_step

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_step <= self.until_step:
            raise OSError("an end-of-training hook failed")
