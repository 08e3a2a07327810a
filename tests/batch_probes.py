"""Test-only callback, added to real runs from the command line (`+callbacks.batch_log._target_=...`): records the
source indices of every training batch a process sees, and the sampler its loader used, in `<folder>/rank<r>.json`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytorch_lightning as pl


class BatchIndexLog(pl.Callback):
    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)
        self.batches: list[list[int]] = []

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, idx: int) -> None:
        self.batches.append(batch[2].tolist())

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        record = {"sampler": type(trainer.train_dataloader.sampler).__name__, "batches": self.batches,
                  "world_size": trainer.world_size}
        (self.folder / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))
