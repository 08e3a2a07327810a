"""The few collectives a replay needs under DDP; each is the identity in a single process.

Every rank replays its own batches in lockstep: gradients are averaged as DDP averages them (so the
replayed updates are the trained ones), a rank's finding stops every rank at the same step, and the
findings meet on rank zero, which writes the report.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor


def distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if distributed() else 1


def any_rank(flag: bool, device: torch.device) -> bool:
    """Whether `flag` holds on any rank."""
    if not distributed():
        return flag
    value = torch.tensor([float(flag)], device=device if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def average_gradients(grads: list[Tensor]) -> None:
    """In place: the mean over ranks of each gradient (DDP's all-reduce)."""
    if not distributed():
        return
    for grad in grads:
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        grad.div_(dist.get_world_size())


def gather(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order (picklable objects; CPU tensors)."""
    if not distributed():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out
