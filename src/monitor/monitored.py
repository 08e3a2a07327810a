"""What the monitor reads from the LightningModule it watches: a small typed protocol, checked at `setup`.

The module (`src/training/module.py::ClassificationModule` implements it) exposes the network whose
layers are measured, the data loss of the coming optimizer step, the penalty gradient's norms and the
number of classes. A module that lacks one of them is refused at `setup` with the missing names, so a
rename fails loudly instead of silently disabling a detector.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor, nn

MEMBERS = ("net", "num_classes", "window_loss", "penalty_grad_norms", "penalty")


@runtime_checkable
class Monitored(Protocol):
    """net: the network (layer names are relative to it: `features.6`). num_classes: C, for ln C.
    window_loss: the data loss of the coming optimizer step (device scalar; the mean over its micro-batches),
    None before the first. penalty_grad_norms: the penalty gradient's norm per trainable parameter of the
    latest optimizer step (None without a penalty). penalty(): the summed penalty (the sharpness probe's loss)."""

    net: nn.Module
    num_classes: int
    penalty_grad_norms: Tensor | None

    @property
    def window_loss(self) -> Tensor | None: ...

    def penalty(self) -> Tensor | None: ...


def require_monitored(module: object) -> Monitored:
    """`module` itself, once it is known to implement `Monitored`.

    Raises:
        TypeError: naming the members it lacks.
    """
    missing = [name for name in MEMBERS if not hasattr(module, name)]
    if missing or not isinstance(module, Monitored):
        raise TypeError(f"the gradient-health monitor needs a module that implements src.monitor.monitored."
                        f"Monitored; {type(module).__name__} lacks {missing}")
    return module
