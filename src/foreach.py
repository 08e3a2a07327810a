"""Fused multi-tensor operations: one kernel launch for a whole list of tensors.

The gradient monitor and the regularizers work on every parameter of a network at every step;
one `torch.linalg.vector_norm` per tensor is ~900 kernel launches on ResNet-152, a fused
`torch._foreach_*` call is a handful. Those functions are private in torch (no stability
promise), although `clip_grad_norm_` and torch's optimizers are built on them, so this module is
the only place that calls them, and each function falls back to public per-tensor ops when
they are missing. `tests/test_foreach.py` checks both paths against the public ops.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

FUSED = all(hasattr(torch, name) for name in (
    "_foreach_norm", "_foreach_mul", "_foreach_mul_", "_foreach_sub", "_foreach_sign", "_foreach_add_",
    "_foreach_copy_",
))


def norms(tensors: Sequence[Tensor], ord: float = 2.0, fused: bool = FUSED) -> Tensor:
    """(len(tensors),) the `ord`-norm of each tensor over all its entries, on their device.

    `ord=0` counts non-zero entries (what `torch.linalg.vector_norm` calls the 0-"norm").
    """
    if not tensors:
        return torch.zeros(0)
    if fused:
        return torch.stack(torch._foreach_norm(list(tensors), ord))
    return torch.stack([torch.linalg.vector_norm(t, ord) for t in tensors])


def nonfinite_counts(tensors: Sequence[Tensor], fused: bool = FUSED) -> Tensor:
    """(len(tensors),) how many NaN/Inf entries each tensor holds: NaN·0 and Inf·0 are NaN, finite·0 is 0."""
    if not tensors:
        return torch.zeros(0)
    zeros = torch._foreach_mul(list(tensors), 0.0) if fused else [t * 0.0 for t in tensors]
    return norms(zeros, 0.0, fused)


def differences(after: Sequence[Tensor], before: Sequence[Tensor], fused: bool = FUSED) -> list[Tensor]:
    """`after[i] - before[i]` for every pair."""
    if fused:
        return list(torch._foreach_sub(list(after), list(before)))
    return [a - b for a, b in zip(after, before, strict=True)]


def scaled(tensors: Sequence[Tensor], factor: float, fused: bool = FUSED) -> list[Tensor]:
    """`factor * tensors[i]` for every tensor (new tensors)."""
    if fused:
        return list(torch._foreach_mul(list(tensors), factor))
    return [t * factor for t in tensors]


def signs(tensors: Sequence[Tensor], fused: bool = FUSED) -> list[Tensor]:
    """`sign(tensors[i])` (-1, 0 or 1 per entry; 0 at exact zeros, as autograd's subgradient of |θ|)."""
    if fused:
        return list(torch._foreach_sign(list(tensors)))
    return [torch.sign(t) for t in tensors]


@torch.no_grad()
def add_(tensors: Sequence[Tensor], others: Sequence[Tensor], alpha: float = 1.0, fused: bool = FUSED) -> None:
    """In place: `tensors[i] += alpha * others[i]` for every pair."""
    if not tensors:
        return
    if fused:
        torch._foreach_add_(list(tensors), list(others), alpha=alpha)
        return
    for t, o in zip(tensors, others, strict=True):
        t.add_(o, alpha=alpha)


@torch.no_grad()
def scale_(tensors: Sequence[Tensor], factor: float | Tensor, fused: bool = FUSED) -> None:
    """In place: every tensor multiplied by `factor` (a number, or a 0-d tensor on their device: no host sync)."""
    if not tensors:
        return
    if fused:
        torch._foreach_mul_(list(tensors), factor)
        return
    for t in tensors:
        t.mul_(factor)


@torch.no_grad()
def copy_(tensors: Sequence[Tensor], sources: Sequence[Tensor], non_blocking: bool = False,
          fused: bool = FUSED) -> None:
    """In place: `tensors[i].copy_(sources[i])` for every pair (`non_blocking`: asynchronous from a GPU into
    pinned memory)."""
    if not tensors:
        return
    if fused:
        torch._foreach_copy_(list(tensors), list(sources), non_blocking=non_blocking)
        return
    for t, s in zip(tensors, sources, strict=True):
        t.copy_(s, non_blocking=non_blocking)
