"""What the module logs, and when: the step metrics of exactly the steps the logger writes, with that step's
values; the training accuracy once per epoch; the progress bar updated a few times a second, not per batch."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ProgressBar, RichProgressBar

from src.models import lenet5
from src.tracking.logger import RunLogger
from src.training.data import SyntheticDataModule
from src.training.module import ClassificationModule
from src.training.progress import ThrottledRichProgressBar
from src.training.regularizers import L2
from tests.mlflow_reads import metric_values


class StepRecorder(pl.Callback):
    """The data loss and penalty of every step, as the module computed them (what the logger must receive)."""

    def __init__(self) -> None:
        self.loss: dict[int, float] = {}
        self.penalty: dict[int, float] = {}

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, *args: Any) -> None:
        step = trainer.global_step - 1  # the step this batch made, as Lightning's logger numbers it
        self.loss[step], self.penalty[step] = float(pl_module.last_loss), float(pl_module.last_penalty)


def test_step_metrics_reach_the_logger_at_its_cadence_with_that_steps_values(mlflow_client, tmp_path) -> None:
    run_id = mlflow_client.create_run(mlflow_client.create_experiment("steps")).info.run_id
    data = SyntheticDataModule(num_samples=120, in_channels=1, batch_size=16, seed=0)  # 84 training examples: 6 batches
    module = ClassificationModule(net=lenet5(), optimizer=partial(torch.optim.SGD, lr=0.01), regularizers=[L2(1e-3)])
    recorder = StepRecorder()
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", logger=RunLogger(mlflow_client, run_id), callbacks=[recorder],
                         log_every_n_steps=4, limit_val_batches=0, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(module, datamodule=data)
    logged = metric_values(mlflow_client, run_id)
    assert [s for s, _ in logged["train/loss"]] == [3, 7, 11]  # every 4th of 12 steps, and only those
    for key, values in (("train/loss", recorder.loss), ("train/penalty", recorder.penalty)):
        for step, value in logged[key]:
            assert value == pytest.approx(values[step], rel=1e-6), (key, step)  # that step's value, not a stale one
    assert [s for s, _ in logged["reg/weight_norm"]] == [3, 7, 11]
    assert [s for s, _ in logged["train/acc"]] == [5, 11]  # once per epoch (6 batches each)
    assert all(0.0 <= v <= 1.0 for _, v in logged["train/acc"])


def test_a_stop_on_any_step_logs_that_step(mlflow_client, tmp_path) -> None:
    class StopAt(pl.Callback):
        def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
            trainer.should_stop = trainer.global_step == 6

    run_id = mlflow_client.create_run(mlflow_client.create_experiment("stop")).info.run_id
    recorder = StepRecorder()
    trainer = pl.Trainer(max_epochs=3, accelerator="cpu", logger=RunLogger(mlflow_client, run_id),
                         callbacks=[StopAt(), recorder], log_every_n_steps=4, limit_val_batches=0,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=tmp_path)
    module = ClassificationModule(net=lenet5(), optimizer=partial(torch.optim.SGD, lr=0.01), regularizers=[L2(1e-3)])
    trainer.fit(module, datamodule=SyntheticDataModule(num_samples=120, in_channels=1, batch_size=16))
    loss = metric_values(mlflow_client, run_id)["train/loss"]
    assert [s for s, _ in loss] == [3, 5] and loss[-1][1] == pytest.approx(recorder.loss[5], rel=1e-6)


def test_the_default_run_has_the_throttled_bar_and_enable_progress_bar_false_removes_it(compose, tmp_path) -> None:
    from src.training.builders import build_callbacks, build_trainer

    cfg = compose(f"paths.output_dir={tmp_path}")
    bars = [cb for cb in build_callbacks(cfg) if isinstance(cb, ProgressBar)]
    assert [type(b) for b in bars] == [ThrottledRichProgressBar] and bars[0].min_interval_s == pytest.approx(0.25)
    cfg = compose(f"paths.output_dir={tmp_path}", "trainer.enable_progress_bar=false")
    trainer = build_trainer(cfg, logger=False, callbacks=build_callbacks(cfg))
    assert trainer.progress_bar_callback is None


def test_the_bar_updates_on_an_epochs_last_batch_and_at_most_at_its_rate(monkeypatch, tmp_path) -> None:
    updates: list[int] = []
    monkeypatch.setattr(RichProgressBar, "on_train_batch_end", lambda self, tr, m, o, b, i: updates.append(i))
    bar = ThrottledRichProgressBar(refresh_per_second=1e-3)  # one update per 1000 s: the first batch, then epoch ends
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", logger=False, callbacks=[bar], limit_val_batches=0,
                         enable_checkpointing=False, enable_model_summary=False, default_root_dir=tmp_path)
    module = ClassificationModule(net=lenet5(), optimizer=partial(torch.optim.SGD, lr=0.01))
    trainer.fit(module, datamodule=SyntheticDataModule(num_samples=120, in_channels=1, batch_size=16))
    assert updates == [0, 5, 5]  # batch 0, then the last batch (5) of each epoch


@pytest.mark.parametrize("batches_per_update", [1, 4, 64])  # every batch, a few, more than an epoch holds
def test_train_acc_is_the_per_batch_count_however_many_batches_one_update_takes(
    mlflow_client, tmp_path, monkeypatch, batches_per_update
) -> None:
    import src.training.module as module_file

    class Counting(ClassificationModule):
        """Counts each training batch's correct predictions from the logits its own step computed."""

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            logits = self(batch[0])
            counts.append((int((logits.argmax(1) == batch[1]).sum()), len(batch[1]), self.current_epoch))
            return super().training_step(batch, batch_idx)

    counts: list[tuple[int, int, int]] = []
    monkeypatch.setattr(module_file, "ACCURACY_BATCHES", batches_per_update)
    run_id = mlflow_client.create_run(mlflow_client.create_experiment("acc")).info.run_id
    torch.manual_seed(0)
    module = Counting(net=lenet5(), optimizer=partial(torch.optim.SGD, lr=0.05))  # no dropout: the same logits twice
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", logger=RunLogger(mlflow_client, run_id), log_every_n_steps=4,
                         limit_val_batches=0, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(module, datamodule=SyntheticDataModule(num_samples=120, in_channels=1, batch_size=16, seed=0))
    expected = [sum(c for c, _, e in counts if e == epoch) / sum(n for _, n, e in counts if e == epoch)
                for epoch in (0, 1)]
    logged = [v for _, v in metric_values(mlflow_client, run_id)["train/acc"]]
    assert len(logged) == 2 and logged == pytest.approx(expected, abs=1e-6)  # each epoch: all of its batches, no other
