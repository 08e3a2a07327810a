"""Edges: a parameter without a gradient is missing, never vanishing; with `nonfinite_count=values` a norm that
overflows float32 is still an event; the plots' history stays bounded on long runs."""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from src.monitor import GradientHealthMonitor
from src.monitor.history import DecimatedHistory
from src.monitor.record import read_record
from src.training.module import ClassificationModule
from tests.memory_sink import MemoryLogger


class SideBranch(nn.Module):
    """Calls `probe` first but discards it: the input-side layer in forward order has no gradient."""

    def __init__(self) -> None:
        super().__init__()
        self.probe = nn.Linear(16, 16)
        self.body = nn.Linear(16, 32)
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        self.probe(x)  # noqa: B018 - executed, not used
        return self.head(torch.relu(self.body(x)))


class Inject(pl.Callback):
    def __init__(self, step: int, value: float) -> None:
        self.step, self.value = step, value

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:  # noqa: ANN001
        if trainer.global_step == self.step:
            pl_module.net.body.weight.grad.fill_(self.value)


def fit(net: nn.Module, steps: int, callbacks=(), **monitor: object) -> tuple[GradientHealthMonitor, MemoryLogger]:  # noqa: ANN001
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(16 * steps, 1, 4, 4), torch.randint(0, 10, (16 * steps,)))
    health = GradientHealthMonitor(every_n_steps=5, plots=False, num_classes=10, **monitor)
    logger = MemoryLogger()
    pl.Trainer(accelerator="cpu", max_steps=steps, logger=logger, callbacks=[*callbacks, health], log_every_n_steps=5,
               limit_val_batches=0, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
               ).fit(ClassificationModule(net=net, optimizer=partial(torch.optim.SGD, lr=0.05)),
                     DataLoader(data, batch_size=16))
    return health, logger


def test_a_layer_without_gradient_is_missing_not_vanishing() -> None:
    health, logger = fit(SideBranch(), 30, vanishing_patience=2, stall_patience=2)
    assert health.labels == ["00.probe", "01.body", "02.head"]
    # no event; 30 steps at chance are too few for `plateau` to judge
    assert health.state.log.events == [] and health.verdict().kind == "inconclusive"
    record = read_record(logger.folder / "health" / "parts")
    assert record["grad_norm/00.probe"].isna().all() and record["grad_rel/00.probe"].isna().all()
    assert (record["grad_norm/01.body"] > 0).all()
    assert "grad_norm/00.probe" not in logger.keys()  # nothing sent for it, rather than a zero


def test_with_value_counts_a_norm_that_overflows_float32_is_still_an_event() -> None:
    health, logger = fit(SideBranch(), 10, [Inject(3, 3e38)], nonfinite_count="values", on_nonfinite="continue")
    [event] = [e for e in health.state.log.events if e.kind == "nonfinite"]
    assert (event.step, event.source, event.layer) == (3, "norm_overflow", "01.body")
    assert logger.history("grad/nonfinite")[4] == 0  # no value was NaN/Inf: the count says so


def test_the_plot_history_stays_bounded_and_evenly_spread() -> None:
    history = DecimatedHistory(capacity=256)
    steps = np.arange(100_000)
    for start in range(0, len(steps), 50):  # flushes of 50 rows
        block = steps[start:start + 50]
        history.add(block, np.log1p(block)[:, None].repeat(3, axis=1))
    kept, values = history.arrays()
    assert len(history.steps) <= 256 and kept[0] == 0 and kept[-1] == 99_999
    gaps = set(np.diff(kept[:-1]).tolist())
    assert gaps == {history.stride} and history.stride >= 100_000 // 256
    assert values[:, 0] == pytest.approx(np.log1p(kept))
    restored = DecimatedHistory(capacity=256)
    restored.load_state_dict(history.state_dict())
    np.testing.assert_array_equal(restored.arrays()[0], kept)
    assert not math.isnan(float(values.sum()))
