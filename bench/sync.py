"""GPU checks of the monitor: no host synchronization between flushes, and the fp16 skipped-step count.

`sync_checked(monitor_class)` is the monitor with CUDA's sync debugger set to `error` around each of
its training-batch hooks on the steps where no flush is due, so any `.item()`, `.cpu()`, `nonzero()`
or other synchronizing call in them raises. A flush is due (by the monitor's contract: it reads the
device once every `every_n_steps` optimizer steps) on the step whose `(global_step + 1)` is a
multiple of `every_n_steps` — `global_step` as the hooks before the update see it.

`ScaleWatch` counts the optimizer steps a `GradScaler` skipped: the scale only ever drops when the
scaler found Inf/NaN gradients and skipped the step (it grows back after `growth_interval` clean steps).
"""

from __future__ import annotations

import functools
from typing import Any

import pytorch_lightning as pl
import torch

BEFORE_UPDATE = ("on_train_batch_start", "on_before_backward", "on_after_backward", "on_before_zero_grad",
                 "on_before_optimizer_step")
AFTER_UPDATE = ("on_train_batch_end",)


def _guard(hook: Any, after_update: bool) -> Any:
    @functools.wraps(hook)
    def guarded(self: Any, trainer: pl.Trainer, *args: Any, **kwargs: Any) -> Any:
        step = trainer.global_step - (1 if after_update else 0)  # the step this batch updated
        if (step + 1) % self.every_n_steps == 0:  # a flush is due: the one read allowed
            return hook(self, trainer, *args, **kwargs)
        torch.cuda.set_sync_debug_mode("error")
        try:
            return hook(self, trainer, *args, **kwargs)
        except RuntimeError as err:
            raise RuntimeError(f"{type(self).__name__}.{hook.__name__} synchronized the host at step {step}, "
                               f"between flushes: {err}") from err
        finally:
            torch.cuda.set_sync_debug_mode(0)
            self.checked_calls = getattr(self, "checked_calls", 0) + 1

    return guarded


def sync_checked(monitor_class: type[pl.Callback]) -> type[pl.Callback]:
    """A subclass of `monitor_class` whose non-flush batch hooks run under `set_sync_debug_mode("error")`."""
    hooks = {}
    for name in BEFORE_UPDATE + AFTER_UPDATE:
        if getattr(monitor_class, name) is not getattr(pl.Callback, name):  # only the hooks it implements
            hooks[name] = _guard(getattr(monitor_class, name), after_update=name in AFTER_UPDATE)
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
