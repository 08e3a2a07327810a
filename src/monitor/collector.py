"""On-device gradient statistics: what is measured each optimizer step, kept on the device until a flush.

Per step, for every trainable parameter (in `named_parameters()` order): the L2 norm of its data
gradient and of its weight, and, when the module adds a penalty's gradient, the L2 norm of that
(`pl_module.penalty_grad_norms`); the step's data loss (`pl_module.window_loss`); with
`count_values`, the number of NaN/Inf gradient values. Each is one fused multi-tensor op
(`src/foreach.py`) written into a preallocated buffer on the training device: no host
synchronization until `read()`, which the monitor calls once per flush.

Costs per step: one norm pass over the gradients, one over the weights (both read every entry
once; a small fraction of a forward-backward pass), one over the penalty's gradients inside the
module when a regularizer acts through the loss, and with `count_values` two more over the gradients.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from src import foreach


@dataclass
class StatsBlock:
    """What one `read()` returns, on the host (float64). Rows are optimizer steps, in order.

    steps: (n,) `trainer.global_step` at `on_before_optimizer_step` (0 = the first update).
    grad: (n, P) L2 norm of each parameter's data gradient (0 where `missing`).
    missing: (n, P) True where the parameter had no gradient at all (`p.grad is None`).
    weight: (n, P) L2 norm of each parameter.
    penalty: (n, P) L2 norm of the penalty's gradient per parameter (0 where none), or None when the
        module added none in this block.
    loss: (n,) data loss of each step (mean over its micro-batches); NaN where the module exposes none
        (`has_loss` False) — or where the loss itself was NaN.
    nonfinite: (n, P) NaN/Inf gradient values (`count_values`) or 1/0 per tensor whose norm is NaN/Inf.
    """

    steps: np.ndarray
    grad: np.ndarray
    missing: np.ndarray
    weight: np.ndarray
    penalty: np.ndarray | None
    loss: np.ndarray
    has_loss: np.ndarray
    nonfinite: np.ndarray

    def __len__(self) -> int:
        return len(self.steps)

    @staticmethod
    def concat(blocks: list[StatsBlock]) -> StatsBlock:
        """One block of several, in order (a missing penalty part reads as 0)."""
        blocks = [b for b in blocks if len(b)]
        if not blocks:
            raise ValueError("no rows")
        if len(blocks) == 1:
            return blocks[0]
        has_penalty = any(b.penalty is not None for b in blocks)
        return StatsBlock(
            steps=np.concatenate([b.steps for b in blocks]),
            grad=np.concatenate([b.grad for b in blocks]),
            missing=np.concatenate([b.missing for b in blocks]),
            weight=np.concatenate([b.weight for b in blocks]),
            penalty=np.concatenate([b.penalty if b.penalty is not None else np.zeros_like(b.grad) for b in blocks])
            if has_penalty else None,
            loss=np.concatenate([b.loss for b in blocks]),
            has_loss=np.concatenate([b.has_loss for b in blocks]),
            nonfinite=np.concatenate([b.nonfinite for b in blocks]),
        )


class GradStatsCollector:
    """Gathers per-step norms into an on-device buffer; `read()` moves them to the host.

    Args:
        net: the network whose trainable parameters are tracked.
        capacity: rows the buffer holds (the monitor flushes before it is full).
        count_values: True counts each NaN/Inf gradient *value* (two extra passes over the gradients
            per step); False flags each gradient *tensor* whose L2 norm is not finite, which the norm
            pass gives for free (a norm is NaN/Inf exactly when a value is, or when finite values
            overflow float32 in the sum of squares, i.e. exceed about 1e19).
    """

    def __init__(self, net: nn.Module, capacity: int, count_values: bool = False) -> None:
        named = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
        self.param_names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self.sizes = np.array([p.numel() for p in self.params], dtype=np.float64)
        self.capacity = capacity
        self.count_values = count_values
        self._buffer: Tensor | None = None
        self._zero: Tensor | None = None
        self._steps: list[int] = []
        self._missing: list[tuple[int, ...]] = []  # per row: parameters without a gradient
        self._has_loss: list[bool] = []
        self._has_penalty = False

    @property
    def pending(self) -> int:
        """Rows collected since the last `read()`."""
        return len(self._steps)

    def _columns(self) -> tuple[int, int, int, int, int]:
        p = len(self.params)
        return 0, p, 2 * p, 3 * p, 3 * p + 1  # grad, weight, penalty, loss, counts

    def _allocate(self, device: torch.device) -> None:
        p = len(self.params)
        width = 3 * p + 1 + (p if self.count_values else 0)
        self._buffer = torch.zeros(self.capacity, width, dtype=torch.float32, device=device)
        self._zero = torch.zeros((), dtype=torch.float32, device=device)

    @torch.no_grad()
    def collect(self, step: int, loss: Tensor | None) -> None:
        """Record one step's data gradients and weights (call where the gradients are final, before the
        penalty's joins them: the callbacks' `on_before_optimizer_step`). No host synchronization."""
        if self.pending >= self.capacity:
            raise RuntimeError("gradient statistics buffer is full: read() it every `capacity` steps")
        if self._buffer is None or self._buffer.device != self.params[0].device:
            self._allocate(self.params[0].device)
        assert self._buffer is not None and self._zero is not None
        row = self._buffer[self.pending]
        g0, w0, pen0, loss_col, c0 = self._columns()
        p = len(self.params)
        grads, missing = [], []  # one pass over the parameters (ResNet-152: 466) per step
        for i, t in enumerate(self.params):
            grad = t.grad
            if grad is None:
                missing.append(i)
            grads.append(self._zero if grad is None else grad)
        row[g0:pen0].copy_(foreach.norms(grads + self.params))  # one fused pass for both (no_grad: no detach needed)
        if loss is not None:
            row[loss_col].copy_(loss.detach().float().reshape(()))
        if self.count_values:
            row[c0:c0 + p].copy_(foreach.nonfinite_counts(grads))
        self._steps.append(int(step))
        self._missing.append(tuple(missing))
        self._has_loss.append(loss is not None)

    @torch.no_grad()
    def add_penalty(self, norms: Tensor) -> None:
        """The penalty gradient's norms (per parameter) of the latest collected step, once the module made them."""
        if not self.pending or self._buffer is None:
            return
        _, _, pen0, loss_col, _ = self._columns()
        self._buffer[self.pending - 1, pen0:loss_col].copy_(norms.detach().float())
        self._has_penalty = True

    def read(self) -> StatsBlock:
        """Move the collected rows to the host (the one synchronization) and empty the buffer."""
        n, p = self.pending, len(self.params)
        g0, w0, pen0, loss_col, c0 = self._columns()
        if n and self._buffer is not None:
            data = self._buffer[:n].cpu().numpy().astype(np.float64)
        else:
            data = np.zeros((0, 3 * p + 1 + (p if self.count_values else 0)))
        grad = data[:, g0:w0].copy()
        counts = data[:, c0:c0 + p].copy() if self.count_values else (~np.isfinite(grad)).astype(np.float64)
        missing = np.zeros((n, p), dtype=bool)
        for row, absent in enumerate(self._missing):
            missing[row, list(absent)] = True
        loss = data[:, loss_col].copy()
        has_loss = np.array(self._has_loss, dtype=bool)
        loss[~has_loss] = np.nan
        block = StatsBlock(
            steps=np.array(self._steps, dtype=np.int64),
            grad=grad,
            missing=missing,
            weight=data[:, w0:pen0].copy(),
            penalty=data[:, pen0:loss_col].copy() if self._has_penalty else None,
            loss=loss,
            has_loss=has_loss,
            nonfinite=counts,
        )
        self._steps, self._missing, self._has_loss, self._has_penalty = [], [], [], False
        if n and self._buffer is not None:
            self._buffer[:n, pen0:].zero_()  # penalty parts and counts start at 0 for the next rows
        return block
