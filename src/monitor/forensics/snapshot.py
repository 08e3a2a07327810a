"""The last state known to be finite: weights, buffers, optimizer state and RNG states, in host memory.

Taken at a flush (the state after its update is the state at the start of the next window), *only if*
the live weights and optimizer state are finite there: a window that starts on non-finite weights (the
last update of the previous window overflowed) keeps the older snapshot, so a replay can still reach the
update that did it. The check is one fused norm pass, read with the flush's own host read; the first
snapshot of a process (its first batch, between flushes) is copied unchecked, its check kept on the
device and read at the next flush (`settle`). Nothing here reads the host between flushes.

The copy is fused: the tensors' host buffers are allocated once (pinned on a GPU) and filled by one
`foreach` copy per device, asynchronous in stream order on a GPU, so the next update cannot overwrite
what is being copied; views of the weights, not `state_dict()`'s per-tensor detached copies, are read.

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


def finite_values(tensors: list[Tensor]) -> bool:
    """Whether every entry of every floating tensor is finite (exact, value by value: for the replay)."""
    return all(bool(torch.isfinite(t).all()) for t in tensors if t.is_floating_point() and t.numel())


def _host_tree(tree: Any, old: Any, pin: bool, pairs: list[tuple[Tensor, Tensor]]) -> Any:
    """`tree` with every tensor replaced by a host tensor of its shape (`old`'s where it matches, else new);
    the (host, live) pairs to copy are appended to `pairs`. Other leaves are copied as they are."""
    if isinstance(tree, Tensor):
        if not (isinstance(old, Tensor) and old.shape == tree.shape and old.dtype == tree.dtype):
            old = torch.empty(tree.shape, dtype=tree.dtype, device="cpu", pin_memory=pin and tree.is_cuda)
        pairs.append((old, tree))
        return old
    if isinstance(tree, dict):
        old = old if isinstance(old, dict) else {}
        return type(tree)((key, _host_tree(value, old.get(key), pin, pairs)) for key, value in tree.items())
    if isinstance(tree, list | tuple):
        old = old if isinstance(old, list | tuple) and len(old) == len(tree) else [None] * len(tree)
        return type(tree)(_host_tree(v, o, pin, pairs) for v, o in zip(tree, old, strict=True))
    return copy.deepcopy(tree)


def rng_states() -> dict[str, Any]:
    """Python's, numpy's, torch's CPU and (when in use) every GPU's generator state."""
    states: dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state(),
                              "torch": torch.get_rng_state()}
    if torch.cuda.is_initialized():  # implies available; `is_available()` costs an NVML probe per call under
        states["cuda"] = torch.cuda.get_rng_state_all()  # Lightning (~0.1 ms on a host without a GPU), every batch
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
    unchecked: Tensor | None = None  # an unchecked snapshot's finiteness, on the device until `settle`

    @property
    def taken(self) -> bool:
        return self.step >= 0

    @property
    def nbytes(self) -> int:
        """Host memory the copies hold (bytes)."""
        return sum(t.nbytes for t in tensors_in(self.weights) + tensors_in(self.optimizer))

    def take(self, step: int, net: nn.Module, optimizer: torch.optim.Optimizer, check: bool = True) -> bool:
        """Copy the live state. `check` (at a flush, where the host may read): only if it is finite, else
        return False and keep the older snapshot. Without: copy it anyway and keep its finiteness on the device
        for `settle`."""
        weights, opt_state = net.state_dict(keep_vars=True), optimizer.state_dict()  # views: no per-tensor op
        finite = finite_on_device(tensors_in(weights) + tensors_in(opt_state["state"]))
        if check and not bool(finite):
            return False
        pin, pairs = torch.cuda.is_initialized(), []  # a CUDA tensor to copy means CUDA is initialized
        self.weights = _host_tree(weights, self.weights, pin, pairs)
        self.optimizer = _host_tree(opt_state, self.optimizer, pin, pairs)
        copy_all(pairs)
        self.rng, self.step, self.unchecked = rng_states(), step, None if check else finite
        return True

    def settle(self) -> bool:
        """At a flush: whether an unchecked snapshot was finite after all (if not, it is dropped: not `taken`)."""
        if self.unchecked is not None:
            finite, self.unchecked = bool(self.unchecked), None
            if not finite:
                self.step, self.weights, self.optimizer, self.rng = -1, {}, {}, {}
                return False
        return True


@torch.no_grad()
def finite_on_device(tensors: list[Tensor]) -> Tensor:
    """A device boolean: whether every floating tensor holds only finite values (one fused norm per device).

    A norm is NaN/Inf exactly when a value is, or when finite values above ~1e19 overflow its sum of
    squares: such weights count as not finite, so the snapshot stays on an older, saner state.
    """
    by_device: dict[torch.device, list[Tensor]] = {}
    for t in tensors:
        if t.is_floating_point() and t.numel():
            by_device.setdefault(t.device, []).append(t)
    groups = sorted(by_device.items(), key=lambda item: item[0].type == "cpu")  # a GPU's flag first: combined there
    flags = [torch.isfinite(foreach.norms(ts)).all() for _, ts in groups]
    if not flags:
        return torch.ones((), dtype=torch.bool)
    return flags[0] if len(flags) == 1 else torch.stack([f.to(flags[0].device, non_blocking=True) for f in flags]).all()


@torch.no_grad()
def copy_all(pairs: list[tuple[Tensor, Tensor]]) -> None:
    """`host.copy_(live)` for every pair: one fused copy per source device, non-blocking from a GPU."""
    by_device: dict[torch.device, list[tuple[Tensor, Tensor]]] = {}
    for host, live in pairs:
        by_device.setdefault(live.device, []).append((host, live))
    for device, group in by_device.items():
        foreach.copy_([h for h, _ in group], [t for _, t in group], non_blocking=device.type == "cuda")
