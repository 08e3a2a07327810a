"""Test-only callbacks, added to real runs from the command line (`+callbacks.<name>._target_=...`).

They act at `on_before_optimizer_step`, like the monitor, and run before it: callbacks from
`cfg.callbacks` come first in the trainer's list, the monitor last.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

RECORDS: list[dict[str, Any]] = []  # one entry per optimizer step, filled by GradNormRecorder


class GradNormRecorder(pl.Callback):
    """Records, per step, `p.grad.norm()` and `p.norm()` of every conv/linear weight, computed directly."""

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        net = pl_module.net
        weights = [(n, m.weight) for n, m in net.named_modules() if isinstance(m, nn.Linear | nn.Conv2d)]
        RECORDS.append({
            "step": trainer.global_step,
            "layers": [n for n, _ in weights],
            "grad": [float(w.grad.norm()) for _, w in weights],
            "weight": [float(w.detach().norm()) for _, w in weights],
            "global": float(torch.sqrt(sum((p.grad.double() ** 2).sum() for p in net.parameters()))),
        })


class PoisonGradient(pl.Callback):
    """At optimizer step `step`, writes NaN into one gradient value of each module in `modules`."""

    def __init__(self, step: int, modules: list[str]) -> None:
        self.step = step
        self.modules = list(modules)

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        if trainer.global_step != self.step:
            return
        named = dict(pl_module.net.named_modules())
        with torch.no_grad():
            for name in self.modules:
                named[name].weight.grad.view(-1)[0] = float("nan")
