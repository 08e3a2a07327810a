"""Timed training steps: the bare loop and real Lightning fits, interleaved across modes.

Every mode of a model starts from the same initial weights and sees the same random batches
(in-memory tensors, as the bundled data sets are: `TensorExamples`). A fit's figure is its mean
step period in milliseconds: the time from the start of the first measured batch to the end of
training, divided by the measured steps, so flushes and logger writes in that window count, and the
first `warmup` steps (allocation, cuDNN autotuning, the first MLflow writes) do not. On a GPU the
clock is read after `torch.cuda.synchronize()` at both ends only: a per-step synchronization would
hide exactly the host-device overlap the monitor is built to keep.

A repeat runs each mode once, in an order rotated from repeat to repeat, so a change in the
machine's load hits every mode alike; compare ratios to `bare`, not absolute times, on a shared machine.
"""

from __future__ import annotations

import contextlib
import copy
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from bench.modes import BARE, LIGHTNING, CallbackFactory
from src.training.data import TensorExamples
from src.training.data.examples import keep_batch
from src.training.module import ClassificationModule

CHANNELS = {"lenet5": 1, "vgg19": 3, "resnet152": 3}  # LeNet-5 on grayscale digits, the others on CIFAR-like images


@dataclass(frozen=True)
class ModelRun:
    """How one model is timed: `width` (None: the model has none), batch size, steps before and in the measurement."""

    model: str
    width: float | None
    warmup: int
    steps: int
    batch_size: int = 32
    log_every: int = 10  # the run's default `trainer.log_every_n_steps`: the monitor flushes and MLflow writes

    @property
    def total(self) -> int:
        return self.warmup + self.steps

    def label(self) -> str:
        width = "" if self.width is None else f", width {self.width:g}"
        return f"{self.model} (batch {self.batch_size}{width}, {self.steps} steps)"


def build_net(run: ModelRun) -> nn.Module:
    from src.models import lenet5, resnet152, vgg19

    builders = {"lenet5": lenet5, "vgg19": vgg19, "resnet152": resnet152}
    kwargs: dict[str, Any] = {"in_channels": CHANNELS[run.model]}
    if run.width is not None:
        kwargs["width"] = run.width
    return builders[run.model](**kwargs)


def random_examples(run: ModelRun, seed: int = 0) -> TensorExamples:
    gen = torch.Generator().manual_seed(seed)
    n = run.total * run.batch_size
    x = torch.randn(n, CHANNELS[run.model], 32, 32, generator=gen)
    return TensorExamples(x, torch.randint(0, 10, (n,), generator=gen), range(n))


def sgd(params: Any) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=0.01, momentum=0.9)


def _synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def autocast(device: str, precision: str) -> contextlib.AbstractContextManager:
    if precision in ("bf16-mixed", "16-mixed"):
        return torch.autocast(device_type=device, dtype=torch.bfloat16 if precision == "bf16-mixed" else torch.float16)
    if precision != "32-true":
        raise ValueError(f"the bare loop runs 32-true, bf16-mixed and 16-mixed, not {precision}")
    return contextlib.nullcontext()


def time_bare(net: nn.Module, data: TensorExamples, run: ModelRun, device: str, precision: str = "32-true") -> float:
    """Plain PyTorch: batch to the device, forward, cross-entropy, zero_grad, backward, SGD step (ms/step);
    16-mixed through a `GradScaler`, as Lightning's plugin does."""
    net = copy.deepcopy(net).to(device).train()
    optimizer = sgd(net.parameters())
    scaler = torch.amp.GradScaler(device, enabled=precision == "16-mixed")
    start = 0.0
    for i in range(run.total):
        if i == run.warmup:
            _synchronize(device)
            start = time.perf_counter()
        x, y, _ = data.__getitems__(range(i * run.batch_size, (i + 1) * run.batch_size))
        x, y = x.to(device), y.to(device)
        with autocast(device, precision):
            loss = F.cross_entropy(net(x), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    _synchronize(device)
    return (time.perf_counter() - start) * 1000 / run.steps


def precision_args(precision: str, device: str) -> dict[str, Any]:
    """`Trainer` arguments for `precision`: 16-mixed on the CPU is Lightning's plugin with a CPU `GradScaler`."""
    if precision == "16-mixed" and device == "cpu":
        from pytorch_lightning.plugins.precision import MixedPrecision

        return {"plugins": [MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu"))]}
    return {"precision": precision}


class StepClock(pl.Callback):
    """Reads the clock at the start of batch `warmup` and at the end of training (synchronized on a GPU)."""

    def __init__(self, warmup: int, device: str) -> None:
        self.warmup, self.device = warmup, device
        self.start = self.end = 0.0

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, idx: int) -> None:
        if trainer.global_step == self.warmup:
            _synchronize(self.device)
            self.start = time.perf_counter()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        _synchronize(self.device)
        self.end = time.perf_counter()


class ThrowawayStore:
    """An MLflow sqlite store in a temporary folder; each fit logs into a new run of it through `RunLogger`.

    Its client is the one a run gets (`src.tracking.client.client`): the store's journal as a run sets it,
    and MLflow's telemetry off as `src.tracking` turns it off (a client made first would start MLflow's
    telemetry threads: Python work beside every Lightning mode that a run does not have)."""

    def __init__(self) -> None:
        from src.tracking.client import client

        self.uri = f"sqlite:///{Path(tempfile.mkdtemp(prefix='bench-')) / 'mlflow.db'}"
        self.client = client(self.uri)
        self.experiment_id = self.client.create_experiment("bench")

    def logger(self) -> Any:
        from src.tracking.logger import RunLogger

        return RunLogger(self.client, self.client.create_run(self.experiment_id).info.run_id)


def timed_fit(
    module: pl.LightningModule, data: TensorExamples, run: ModelRun, device: str, precision: str,
    logger: Any, callbacks: list[pl.Callback], **trainer_args: Any,
) -> tuple[float, pl.Trainer]:
    """`module` fitted for `run.total` steps on `data` (no validation, checkpoint, progress bar or summary),
    `StepClock` first among the callbacks; returns (ms/step over the measured steps, the trainer)."""
    clock = StepClock(run.warmup, device)
    trainer = pl.Trainer(
        accelerator="gpu" if device == "cuda" else "cpu", devices=1, max_steps=run.total,
        **precision_args(precision, device), logger=logger, callbacks=[clock, *callbacks], limit_val_batches=0,
        num_sanity_val_steps=0, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        **trainer_args,
    )
    trainer.fit(module, DataLoader(data, batch_size=run.batch_size, collate_fn=keep_batch))
    return (clock.end - clock.start) * 1000 / run.steps, trainer


def fit(
    net: nn.Module, data: TensorExamples, run: ModelRun, callbacks: list[pl.Callback], store: ThrowawayStore,
    device: str, precision: str = "32-true",
) -> tuple[float, pl.Trainer]:
    """One real `fit` of `run.total` steps with `callbacks`, logging at the run's cadence; (ms/step, the trainer)."""
    return timed_fit(project_module(net), data, run, device, precision, store.logger(), callbacks,
                     log_every_n_steps=run.log_every)


def project_module(net: nn.Module) -> ClassificationModule:
    """The project's module around a copy of `net`, with the bare loop's optimizer (`sgd`'s settings)."""
    return ClassificationModule(net=copy.deepcopy(net), optimizer=partial(torch.optim.SGD, lr=0.01, momentum=0.9))


class PlainModule(pl.LightningModule):
    """The bare loop's step as a `LightningModule`: forward, cross-entropy, SGD; nothing logged, no metric."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch[:2]
        return F.cross_entropy(self.net(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return sgd(self.parameters())


def fit_plain(
    net: nn.Module, data: TensorExamples, run: ModelRun, device: str, precision: str = "32-true",
) -> tuple[float, pl.Trainer]:
    """The `LIGHTNING` floor: `PlainModule` through `timed_fit` with no logger and no callback but the clock;
    the same data loader, steps and clock as `fit`. Returns (ms/step, the trainer)."""
    return timed_fit(PlainModule(copy.deepcopy(net)), data, run, device, precision, logger=False, callbacks=[])


def rotated(names: list[str], r: int) -> list[str]:
    return names[r % len(names):] + names[: r % len(names)]


def alternated(names: tuple[str, ...], r: int) -> tuple[str, ...]:
    """`names` in round `r`'s order: as given in even rounds, reversed in odd ones (each name's neighbours differ)."""
    return names if r % 2 == 0 else names[::-1]


def measure(
    runs: list[ModelRun], modes: Mapping[str, CallbackFactory | None], repeats: int, device: str,
    precision: str = "32-true", store: ThrowawayStore | None = None,
) -> Iterator[tuple[ModelRun, dict[str, list[float]]]]:
    """For each model, `repeats` interleaved rounds of every mode: {mode: [ms/step of each repeat]}."""
    store = store or ThrowawayStore()
    for run in runs:
        net, data = build_net(run), random_examples(run)
        times: dict[str, list[float]] = {mode: [] for mode in modes}
        for r in range(repeats):
            for mode in rotated(list(modes), r):
                factory = modes[mode]
                if mode == LIGHTNING:
                    times[mode].append(fit_plain(net, data, run, device, precision)[0])
                elif mode == BARE or factory is None:
                    times[mode].append(time_bare(net, data, run, device, precision))
                else:
                    times[mode].append(fit(net, data, run, factory(run.log_every), store, device, precision)[0])
        yield run, times
