"""Training-step time with and without gradient monitoring, side by side in one process.

    python scripts/bench_monitor.py                       # ResNet-152, VGG-19, LeNet-5 on CPU
    python scripts/bench_monitor.py --models lenet5 --repeats 5 --steps 20

Modes, each a real Lightning `fit` on the same initial weights and the same random batches
(batch 32, 32x32 images, width 1):
  (a) none     no gradient monitoring
  (b) monitor  `GradientHealthMonitor` (every step on device, host read + MLflow batch every N steps)
  (c) lightning Lightning's `grad_norm` utility with `log_dict` at every step
  (d) item     a per-parameter `p.grad.norm().item()` loop every step, logged every N steps
Every mode logs to MLflow (a throwaway sqlite store) at the same `log_every_n_steps`.

A repeat runs each mode once, in an order rotated from repeat to repeat (the modes are
interleaved, so a change in machine load hits all of them); a mode's time in a repeat is the
mean step period (batch start to next batch start, flushes included) over the measured steps
after warm-up. The table gives the median over repeats and its ratio to (a): on a shared
machine compare ratios, not absolute times.

With CUDA present it first checks that the monitor makes no host synchronization between
flushes: `torch.cuda.set_sync_debug_mode("error")` around every non-flush hook call.
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere, without installing

import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402
from pytorch_lightning.utilities import grad_norm  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from src.models import lenet5, resnet152, vgg19  # noqa: E402
from src.monitor import GradientHealthMonitor  # noqa: E402
from src.tracking.logger import RunLogger  # noqa: E402
from src.training.module import ClassificationModule  # noqa: E402

MODES = ("none", "monitor", "lightning", "item")
BUILDERS = {
    "resnet152": partial(resnet152, in_channels=3, width=1.0),
    "vgg19": partial(vgg19, in_channels=3, width=1.0),
    "lenet5": partial(lenet5, in_channels=1),
}


class LightningGradNorm(ClassificationModule):
    """(c): Lightning's documented recipe, `self.log_dict(grad_norm(self, norm_type=2))` every step."""

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        self.log_dict(grad_norm(self, norm_type=2))


class ItemLoop(pl.Callback):
    """(d): one `.norm().item()` per parameter every step; the values go to the logger every N steps."""

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer) -> None:  # noqa: ANN001
        values = {f"grad_norm/{n}": p.grad.norm().item() for n, p in pl_module.named_parameters() if p.grad is not None}
        if (trainer.global_step + 1) % trainer.log_every_n_steps == 0:
            trainer.logger.log_metrics(values, step=trainer.global_step)


class StepTimer(pl.Callback):
    """Periods between consecutive batch starts (the last one ends at `on_train_end`), in seconds."""

    def __init__(self) -> None:
        self.marks: list[float] = []

    def _mark(self) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.marks.append(time.perf_counter())

    def on_train_batch_start(self, *args) -> None:  # noqa: ANN002
        self._mark()

    def on_train_end(self, *args) -> None:  # noqa: ANN002
        self._mark()

    def periods(self) -> list[float]:
        return [b - a for a, b in zip(self.marks, self.marks[1:], strict=False)]


class SyncCheckedMonitor(GradientHealthMonitor):
    """The monitor with CUDA's sync debugger set to `error` around every hook call that must not sync: the
    collection (`on_before_optimizer_step`, every step) and `on_train_batch_end` except on flush steps."""

    def _checked(self, hook, flush_step: bool, *args) -> None:  # noqa: ANN001, ANN002
        torch.cuda.set_sync_debug_mode(0 if flush_step else "error")
        try:
            hook(*args)
        finally:
            torch.cuda.set_sync_debug_mode(0)
        self.checked = getattr(self, "checked", 0) + (not flush_step)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:  # noqa: ANN001
        self._checked(super().on_before_optimizer_step, False, trainer, pl_module, optimizer)

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:  # noqa: ANN001, ANN002
        flush_step = trainer.global_step % self.every_n_steps == 0 or trainer.should_stop  # (step + 1) % n
        self._checked(super().on_train_batch_end, flush_step, trainer, pl_module, *args)


def bench_logger(store: str) -> RunLogger:
    """A logger into a fresh run of the throwaway store (every mode pays the same MLflow cost)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("bench")
    experiment_id = experiment.experiment_id if experiment else client.create_experiment("bench")
    return RunLogger(client, client.create_run(experiment_id).info.run_id)


def fit_once(
    mode: str, net: torch.nn.Module, data: TensorDataset, steps: int, log_every: int, store: str,
    monitor_cls: type[GradientHealthMonitor] = GradientHealthMonitor,
) -> tuple[list[float], pl.Callback | None]:
    """One `fit` of `steps` steps in `mode`; returns the step periods (s) and the mode's callback."""
    optimizer = partial(torch.optim.SGD, lr=0.01, momentum=0.9)
    module_cls = LightningGradNorm if mode == "lightning" else ClassificationModule
    module = module_cls(net=copy.deepcopy(net), optimizer=optimizer, num_classes=10)
    timer = StepTimer()
    extra: pl.Callback | None = None
    if mode == "monitor":
        extra = monitor_cls(every_n_steps=log_every, plots=False)
    elif mode == "item":
        extra = ItemLoop()
    trainer = pl.Trainer(
        accelerator="auto", devices=1, max_steps=steps, logger=bench_logger(store),
        callbacks=[timer] + ([extra] if extra else []), log_every_n_steps=log_every, limit_val_batches=0,
        num_sanity_val_steps=0, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )
    trainer.fit(module, DataLoader(data, batch_size=32, shuffle=False))
    return timer.periods(), extra


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(BUILDERS), choices=list(BUILDERS))
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds of all four modes")
    parser.add_argument("--steps", type=int, default=8, help="measured optimizer steps per fit")
    parser.add_argument("--warmup", type=int, default=2, help="steps per fit left out of the timing")
    parser.add_argument("--log-every", type=int, default=10, help="log_every_n_steps for all modes (monitor flushes)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)  # no per-fit banners between the table rows
    pl.seed_everything(0, verbose=False)
    store = f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    print(f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads, load {os.getloadavg()[0]:.1f}, "
          f"{args.repeats} repeats x {args.steps} steps (+{args.warmup} warm-up), log_every_n_steps={args.log_every}")

    if torch.cuda.is_available():
        data = TensorDataset(torch.randn(32 * 12, 3, 32, 32), torch.randint(0, 10, (32 * 12,)))
        _, monitor = fit_once("monitor", BUILDERS["resnet152"](), data, 12, args.log_every, store, SyncCheckedMonitor)
        print(f"GPU sync check: {monitor.checked} non-flush monitor hook calls ran under set_sync_debug_mode('error'): "
              "no host synchronization between flushes")
    else:
        print("GPU sync check: not run (no CUDA device)")

    rows = []
    for name in args.models:
        channels = 1 if name == "lenet5" else 3
        total = args.steps + args.warmup
        data = TensorDataset(torch.randn(32 * total, channels, 32, 32), torch.randint(0, 10, (32 * total,)))
        net = BUILDERS[name]()
        times: dict[str, list[float]] = {m: [] for m in MODES}
        for r in range(args.repeats):
            for mode in MODES[r % len(MODES):] + MODES[: r % len(MODES)]:
                periods, _ = fit_once(mode, net, data, total, args.log_every, store)
                times[mode].append(statistics.fmean(periods[args.warmup:]) * 1000)
        base = statistics.median(times["none"])
        for mode in MODES:
            med = statistics.median(times[mode])
            rows.append((name, mode, med, med / base, min(times[mode]), max(times[mode])))
            print(f"  {name:9s} {mode:9s} {med:9.1f} ms  x{med / base:.3f}  (repeats {min(times[mode]):.1f}-"
                  f"{max(times[mode]):.1f})", flush=True)

    print("\n| model | (a) none ms | (b) monitor | (c) Lightning grad_norm | (d) .item() loop |")
    print("|---|---|---|---|---|")
    for name in args.models:
        cells = {mode: (med, ratio) for n, mode, med, ratio, *_ in rows if n == name}
        print(f"| {name} | {cells['none'][0]:.1f} | " + " | ".join(
            f"{cells[m][0]:.1f} ms (x{cells[m][1]:.3f})" for m in MODES[1:]) + " |")


if __name__ == "__main__":
    main()
