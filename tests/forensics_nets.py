"""Nets and data built to go non-finite in a known place, for the forensics tests (`tests/test_forensics*.py`).

- `LogGate`: adds log(1 - 2·marked·armed) to each example: 0 for every example but the *marked* ones
  (an image that is the constant `marker` everywhere), whose log of a negative number is NaN once
  the gate is armed (after `arm_after_calls` training forwards; the count is a buffer, so checkpoints
  and the forensics snapshot carry it). `gated_mlp` puts it in front of the project's MLP.
- `PoisonedSynthetic`: the synthetic data with the rows `poison_rows` set to `poison_value`.
- `SqrtSquare`: sqrt(x·x), finite forward, NaN backward at x = 0 (inf · 0).
- `tensor_loader`: in-memory examples with their source indices and the project's seeded loader settings.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from src.models import mlp
from src.settings.signature import checked
from src.training.data.bundled import SyntheticDataModule
from src.training.data.examples import TensorExamples, keep_batch

MARKER = -7.0


class LogGate(nn.Module):
    def __init__(self, arm_after_calls: int = 0, marker: float = MARKER) -> None:
        super().__init__()
        self.arm_after_calls, self.marker = arm_after_calls, marker
        self.register_buffer("calls", torch.zeros((), dtype=torch.int64))

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            self.calls += 1
        armed = (self.calls > self.arm_after_calls).float()
        marked = (x == self.marker).flatten(1).all(1).float()
        return x + torch.log(1 - 2 * marked * armed).view(-1, *([1] * (x.dim() - 1)))


def gated_mlp(arm_after_calls: int = 0, **settings: Any) -> nn.Module:
    return nn.Sequential(LogGate(arm_after_calls), mlp(**settings))


class PoisonedSynthetic(SyntheticDataModule):
    @checked("data")
    def __init__(self, poison_rows: list[int] | None = None, poison_value: float = MARKER, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.poison_rows, self.poison_value = list(poison_rows or []), poison_value

    def load_tensors(self) -> tuple[Tensor, Tensor]:
        x, y = super().load_tensors()
        x[self.poison_rows] = self.poison_value
        return x, y


class SqrtSquare(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return torch.sqrt(x * x)


def tensor_loader(x: Tensor, y: Tensor, batch_size: int = 16, seed: int = 0) -> DataLoader:
    return DataLoader(TensorExamples(x, y, range(len(x))), batch_size=batch_size, shuffle=True,
                      generator=torch.Generator().manual_seed(seed), collate_fn=keep_batch)


def first_step_with(loader: DataLoader, row: int) -> int:
    """The 0-based batch (= optimizer step, no accumulation) of the first epoch that holds source row `row`.
    Iterating draws from the loader's generator: give it a fresh loader (the one training gets is another)."""
    return next(i for i, batch in enumerate(loader) if row in batch[2].tolist())


def batch_rows(loader: DataLoader, step: int) -> list[int]:
    """The source rows of batch `step` of the first epoch (a fresh loader, as `first_step_with`)."""
    return next(batch[2].tolist() for i, batch in enumerate(loader) if i == step)
