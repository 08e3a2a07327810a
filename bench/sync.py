"""Checks of the monitor: no host synchronization between flushes, and the fp16 skipped-step count.

`sync_checked(monitor_class)` is the monitor with CUDA's sync debugger set to `error` around each of
its training-batch hooks on the steps where no flush is due, so any `.item()`, `.cpu()`, `nonzero()`
or other synchronizing call in them raises; `sync_checked(monitor_class, emulate=True)` does the same
on the CPU with `bench/host_reads.py`'s emulation of that debugger.

A flush is due (by the monitor's contract: it reads the
device once every `every_n_steps` optimizer steps) on the step whose `(global_step + 1)` is a
multiple of `every_n_steps` — `global_step` as the hooks before the update see it — on a stop, and on a
sharpness probe's step (Lanczos reads the host to stop at its tolerance, so the monitor flushes there):
`GradientHealthMonitor.flush_due` says which.

`ScaleWatch` counts the optimizer steps a `GradScaler` skipped: the scale only ever drops when the
scaler found Inf/NaN gradients and skipped the step (it grows back after `growth_interval` clean steps).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

import pytorch_lightning as pl
import torch

BEFORE_UPDATE = ("on_train_batch_start", "on_before_backward", "on_after_backward", "on_before_zero_grad",
                 "on_before_optimizer_step")
AFTER_UPDATE = ("on_train_batch_end",)


@contextlib.contextmanager
def cuda_sync_errors() -> Iterator[None]:
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(0)


def _guard(hook: Any, after_update: bool, emulate: bool) -> Any:
    from bench.host_reads import no_host_reads

    @functools.wraps(hook)
    def guarded(self: Any, trainer: pl.Trainer, *args: Any, **kwargs: Any) -> Any:
        step = trainer.global_step - (1 if after_update else 0)  # the step this batch updated
        if self.flush_due(step, trainer):  # a flush is due: the one read allowed
            return hook(self, trainer, *args, **kwargs)
        try:
            with no_host_reads() if emulate else cuda_sync_errors():
                return hook(self, trainer, *args, **kwargs)
        except RuntimeError as err:
            raise RuntimeError(f"{type(self).__name__}.{hook.__name__} synchronized the host at step {step}, "
                               f"between flushes: {err}") from err
        finally:
            self.checked_calls = getattr(self, "checked_calls", 0) + 1

    return guarded


def sync_checked(monitor_class: type[pl.Callback], emulate: bool = False) -> type[pl.Callback]:
    """A subclass of `monitor_class` whose non-flush batch hooks run under `set_sync_debug_mode("error")`
    (`emulate`: under the CPU emulation of it, `bench/host_reads.py`)."""
    hooks = {}
    for name in BEFORE_UPDATE + AFTER_UPDATE:
        if getattr(monitor_class, name) is not getattr(pl.Callback, name):  # only the hooks it implements
            hooks[name] = _guard(getattr(monitor_class, name), name in AFTER_UPDATE, emulate)
    return type(f"SyncChecked{monitor_class.__name__}", (monitor_class,), hooks)


class ScaleWatch(pl.Callback):
    """Counts the steps the trainer's `GradScaler` skipped (16-mixed), from drops of its scale after each batch."""

    def __init__(self) -> None:
        self.skipped = 0
        self.scale: float | None = None

    @staticmethod
    def scaler(trainer: pl.Trainer) -> Any:
        return getattr(trainer.precision_plugin, "scaler", None)  # MixedPrecision's GradScaler (None without fp16)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        scaler = self.scaler(trainer)
        self.scale = float(scaler.get_scale()) if scaler is not None else None

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        scaler = self.scaler(trainer)
        if scaler is None:
            return
        scale = float(scaler.get_scale())  # a host read: this callback is for the check, never for timing
        if self.scale is not None and scale < self.scale:
            self.skipped += 1
        self.scale = scale


def check_host_reads(
    run: Any, modes: dict[str, Any], precisions: tuple[str, ...], device: str, emulate: bool,
) -> list[tuple[str, str, int, str | None]]:
    """Every monitor mode trains `run` (flushes every `run.log_every` steps) with its non-flush hooks guarded,
    per precision: [(mode, precision, guarded hook calls, the first host read or None)]."""
    from bench.steps import ThrowawayStore, build_net, fit, random_examples

    net, data, store, results = build_net(run), random_examples(run), ThrowawayStore(), []
    for precision in precisions:
        for mode, factory in modes.items():
            callbacks = factory(run.log_every)
            for cb in callbacks:
                cb.__class__ = sync_checked(type(cb), emulate)
            try:
                fit(net, data, run, callbacks, store, device, precision)
                error = None
            except RuntimeError as err:
                error = str(err).splitlines()[0]
            results.append((mode, precision, sum(getattr(cb, "checked_calls", 0) for cb in callbacks), error))
    return results


def report_lines(results: list[tuple[str, str, int, str | None]], how: str) -> list[str]:
    return [f"  FAILED {mode} {precision}: {error}" if error else
            f"  {mode} {precision}: {calls} non-flush hook calls under {how}, 0 host reads between flushes"
            for mode, precision, calls, error in results]
