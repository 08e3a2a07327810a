"""`last.ckpt` follows the newest checkpoint check with `RunCheckpoint`; with Lightning's `ModelCheckpoint` it stays
at the last improvement of the monitored metric. Shown on a pair: a run whose validation accuracy never moves
(learning rate 0) after its first check, four epochs, validated each one."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from src.lifecycle.last_checkpoint import RunCheckpoint

STEPS_PER_EPOCH, EPOCHS = 2, 4


class Frozen(pl.LightningModule):
    """A linear classifier trained at learning rate 0: its validation accuracy is the same at every check."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(4, 2)

    def training_step(self, batch: list[torch.Tensor], idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def validation_step(self, batch: list[torch.Tensor], idx: int) -> None:
        x, y = batch
        self.log("val/acc", (self.net(x).argmax(1) == y).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)


def last_step(kind: type[ModelCheckpoint], folder: Path) -> tuple[int, list[str]]:
    """Train `Frozen` with a checkpoint callback of `kind` (the project's settings); last.ckpt's step, state keys."""
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(16, 4), torch.randint(0, 2, (16,)))
    checkpoint = kind(dirpath=folder, filename="epoch{epoch:03d}", auto_insert_metric_name=False, monitor="val/acc",
                      mode="max", save_top_k=1, save_last=True, enable_version_counter=False)
    trainer = pl.Trainer(max_epochs=EPOCHS, limit_train_batches=STEPS_PER_EPOCH, limit_val_batches=1, logger=False,
                         callbacks=[checkpoint], enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0)
    trainer.fit(Frozen(), DataLoader(data, batch_size=4), DataLoader(data, batch_size=16))
    saved = torch.load(folder / "last.ckpt", map_location="cpu", weights_only=False)
    return saved["global_step"], list(saved["callbacks"])


@pytest.mark.parametrize("kind", [ModelCheckpoint, RunCheckpoint])
def test_last_ckpt_is_at_the_newest_check_only_with_the_project_callback(tmp_path: Path,
                                                                         kind: type[ModelCheckpoint]) -> None:
    step, keys = last_step(kind, tmp_path)
    if kind is RunCheckpoint:
        assert step == EPOCHS * STEPS_PER_EPOCH, "last.ckpt at the last check, though the accuracy never improved"
        assert [k.split("{")[0] for k in keys] == ["ModelCheckpoint"], "its state under the parent's key"
    else:
        assert step == STEPS_PER_EPOCH, "Lightning's last.ckpt stays where val/acc last improved (the first check)"
    assert sorted(p.name for p in tmp_path.glob("*.ckpt")) == ["epoch000.ckpt", "last.ckpt"], "top-k unchanged"
