"""Operators a monitor mode adds to a training step: what its per-layer work costs in launches, not in time.

On a GPU every operator is a kernel launch (or a copy) on the compute stream, a few microseconds of host
time each, whatever the layer's size; ResNet-152 has ~150 tracked layers and ~1,400 state tensors, so
one operator per layer or per tensor is thousands per step. The count does not depend on the width or
the batch, so it is taken on the CPU at a small width: a `TorchDispatchMode` sees every ATen operator the
training thread runs (the monitor's background writer, on its own thread, is not counted), bucketed by
optimizer step.

`count_ops` trains one window twice over (`2 × log_every` steps, the monitor flushing every `log_every`)
and sums the second window: it holds one flush and, at `log_every = 10`, the instruments' due step
(their default schedule is every 10 steps). A mode's figure is its excess over `monitor` in that window:
`ops` launch work (compute or copy), `views` only make tensor metadata (`detach`, `view`: no kernel).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import pytorch_lightning as pl
from torch.utils._python_dispatch import TorchDispatchMode

from bench.modes import CallbackFactory
from bench.steps import ModelRun, ThrowawayStore, build_net, fit, random_examples


class OpCounter(TorchDispatchMode):
    """Counts the ATen operators of this thread, per optimizer step (`step`, set by `StepMark`)."""

    def __init__(self) -> None:
        super().__init__()
        self.step = -1
        self.ops: Counter[int] = Counter()
        self.views: Counter[int] = Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        (self.views if func.is_view else self.ops)[self.step] += 1
        return func(*args, **(kwargs or {}))


class StepMark(pl.Callback):
    """Sets the counter's step at each batch start (put first: before the monitor's own hooks)."""

    def __init__(self, counter: OpCounter) -> None:
        self.counter = counter

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        self.counter.step = trainer.global_step


def count_ops(run: ModelRun, modes: Mapping[str, CallbackFactory], device: str = "cpu") -> dict[str, dict[str, int]]:
    """{mode: {"ops", "views"}} summed over the second flush window (steps log_every .. 2·log_every − 1)."""
    net, data, store = build_net(run), random_examples(run), ThrowawayStore()
    window = range(run.log_every, 2 * run.log_every)
    out = {}
    for mode, factory in modes.items():
        counter = OpCounter()
        with counter:
            fit(net, data, run, [StepMark(counter), *factory(run.log_every)], store, device)
        out[mode] = {"ops": sum(counter.ops[s] for s in window), "views": sum(counter.views[s] for s in window)}
    return out


def ops_lines(counts: dict[str, dict[str, int]], base: str = "monitor") -> list[str]:
    """The table: each mode's operators in the window and its excess over `base`."""
    ref = counts[base]
    lines = [f"| mode | ops in the window | extra ops over {base} | extra views |", "|---|---|---|---|"]
    for mode, c in counts.items():
        lines.append(f"| {mode} | {c['ops']:,} | {c['ops'] - ref['ops']:,} | {c['views'] - ref['views']:,} |")
    return lines


def ops_run(model: str = "resnet152", log_every: int = 10) -> ModelRun:
    """Two flush windows of `model` at width 1/16, batch 4 (the counts do not depend on either)."""
    width = None if model == "lenet5" else 0.0625
    return ModelRun(model, width, 0, 2 * log_every + 1, batch_size=4, log_every=log_every)  # + 1: the flush is mid-run
