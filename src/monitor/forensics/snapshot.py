"""The last state known to be finite: weights, buffers, optimizer state and RNG states, in host memory.

Taken at the start of a flush window (the step after a flush), *only if* the live weights and
optimizer state are finite there: a window that starts on non-finite weights (the last update of
the previous window overflowed) keeps the older snapshot, so a replay can still reach the update
that did it. The check is one fused norm pass and one host read per window; the copy goes into
host buffers allocated once and reused (pinned on a GPU, copied asynchronously in stream order, so
the next update cannot overwrite what is being copied).

Memory: one copy of every floating tensor of the network's `state_dict` and of the optimizer's state
(SGD with momentum: 2 x the weights; Adam: 3 x), in bytes `nbytes`.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from src import foreach


def tensors_in(tree: Any) -> list[Tensor]:
    """Every tensor inside nested dicts/lists/tuples, in a stable order."""
    if isinstance(tree, Tensor):
        return [tree]
    if isinstance(tree, dict):
        return [t for key in tree for t in tensors_in(tree[key])]
    if isinstance(tree, list | tuple):
        return [t for item in tree for t in tensors_in(item)]
    return []


def all_finite(tensors: list[Tensor]) -> bool:
    """Whether every floating tensor holds only finite values (one fused pass per device, one host read).

    A norm is NaN/Inf exactly when a value is, or when finite values above ~1e19 overflow its sum of
    squares: such weights count as not finite, so the snapshot stays on an older, saner state.
    """
    by_device: dict[torch.device, list[Tensor]] = {}
    for t in tensors:
        if t.is_floating_point() and t.numel():
            by_device.setdefault(t.device, []).append(t.detach())
    flags = [torch.isfinite(foreach.norms(ts)).all() for ts in by_device.values()]
    return bool(torch.stack([f.cpu() for f in flags]).all()) if flags else True


def finite_values(tensors: list[Tensor]) -> bool:
    """Whether every entry of every floating tensor is finite (exact, value by value: for the replay)."""
    return all(bool(torch.isfinite(t).all()) for t in tensors if t.is_floating_point() and t.numel())


def _copy_into(tree: Any, old: Any, pin: bool) -> Any:
    """`tree` with every tensor copied to host memory, reusing `old`'s buffers where the shapes match."""
    if isinstance(tree, Tensor):
        if not (isinstance(old, Tensor) and old.shape == tree.shape and old.dtype == tree.dtype):
            old = torch.empty(tree.shape, dtype=tree.dtype, device="cpu", pin_memory=pin and tree.is_cuda)
        return old.copy_(tree.detach(), non_blocking=tree.is_cuda)
    if isinstance(tree, dict):
        old = old if isinstance(old, dict) else {}
        return {key: _copy_into(value, old.get(key), pin) for key, value in tree.items()}
    if isinstance(tree, list | tuple):
        old = old if isinstance(old, list | tuple) and len(old) == len(tree) else [None] * len(tree)
        return type(tree)(_copy_into(v, o, pin) for v, o in zip(tree, old, strict=True))
    return copy.deepcopy(tree)


def rng_states() -> dict[str, Any]:
    """Python's, numpy's, torch's CPU and (when in use) every GPU's generator state."""
    states: dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state(),
                              "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states:
        torch.cuda.set_rng_state_all(states["cuda"])


@dataclass
class Snapshot:
    """The state at the start of optimizer step `step` (before its first forward)."""

    step: int = -1
    weights: dict[str, Tensor] = field(default_factory=dict)  # the network's state_dict (buffers included)
    optimizer: dict[str, Any] = field(default_factory=dict)  # the optimizer's state_dict
    rng: dict[str, Any] = field(default_factory=dict)

    @property
    def taken(self) -> bool:
        return self.step >= 0

    @property
    def nbytes(self) -> int:
        """Host memory the copies hold (bytes)."""
        return sum(t.nbytes for t in tensors_in(self.weights) + tensors_in(self.optimizer))

    def take(self, step: int, net: nn.Module, optimizer: torch.optim.Optimizer) -> bool:
        """Copy the live state if it is finite; return whether it was (False: the older snapshot stays)."""
        weights, opt_state = net.state_dict(), optimizer.state_dict()
        if not all_finite(tensors_in(weights) + tensors_in(opt_state["state"])):
            return False
        pin = torch.cuda.is_available()
        self.weights = _copy_into(weights, self.weights, pin)
        self.optimizer = _copy_into(opt_state, self.optimizer, pin)
        self.rng, self.step = rng_states(), step
        return True
