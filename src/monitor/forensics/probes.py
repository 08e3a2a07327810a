"""Per-module finiteness checks for one replayed micro-batch: forward hooks in forward order, and
gradient hooks on each module's output and input.

Every module of the network (containers too) gets a forward hook; hooks fire when a module's forward
*returns*, so a container comes after its children and the first module whose output holds NaN/Inf
is the innermost one that made it (a leaf, or a container whose own code — a residual sum, a
functional `log` — did). For each output: the non-finite count, the largest finite |value| and, when
dim 0 is the batch, which rows (examples) hold a non-finite value. In backward, hooks on the output
and on the first input that needs a gradient say whether the gradient reaching the module and the one
leaving it are finite: the module that makes a non-finite gradient out of a finite one is where
backward broke. Everything stays on the device until `read()` (one host read per check).
Used only during a replay, on a copy of the network: training never carries these hooks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn


def first_tensor(value: Any) -> Tensor | None:
    if isinstance(value, Tensor):
        return value
    if isinstance(value, list | tuple):
        return next((v for v in value if isinstance(v, Tensor)), None)
    return None


def _bad_rows(bad: Tensor, batch: int) -> Tensor | None:
    return bad.reshape(bad.shape[0], -1).any(1) if bad.dim() >= 1 and bad.shape[0] == batch else None


@dataclass
class ModuleRecord:
    name: str  # relative to the network; "" is the network itself
    kind: str  # class name
    nonfinite: Tensor  # device scalar: NaN/Inf entries in the output
    max_abs: Tensor  # device scalar: largest finite |value| of the output
    rows: Tensor | None  # (batch,) bool: examples whose output row is non-finite
    grad_fn: str | None = None  # the autograd node that made the output (its last forward op)
    grad_out_bad: Tensor | None = None  # device bool: the gradient reaching the output is non-finite
    grad_in_bad: Tensor | None = None  # device bool: the gradient of its first input is non-finite
    grad_in_rows: Tensor | None = None  # (batch,) bool, per example


@dataclass
class ModuleProbes:
    """Attach to `net` for one forward/backward of a batch of `batch` examples; `close()` removes every hook."""

    net: nn.Module
    batch: int
    records: list[ModuleRecord] = field(default_factory=list)  # in forward (completion) order
    _handles: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name, module in self.net.named_modules():
            self._handles.append(module.register_forward_hook(self._hook(name)))

    def _hook(self, name: str):  # noqa: ANN202
        def hook(module: nn.Module, inputs: tuple, output: Any) -> None:
            out = first_tensor(output)
            if out is None or not out.is_floating_point():
                return
            with torch.no_grad():
                bad = ~torch.isfinite(out)
                max_abs = out.detach().abs().masked_fill(bad, 0).amax() if out.numel() else out.new_zeros(())
                record = ModuleRecord(name, type(module).__name__, bad.sum(), max_abs, _bad_rows(bad, self.batch),
                                      type(out.grad_fn).__name__ if out.grad_fn is not None else None)
            self.records.append(record)
            if out.requires_grad:
                self._handles.append(out.register_hook(self._grad_hook(record, "out")))
            inp = first_tensor(inputs)
            if inp is not None and inp.requires_grad and inp.is_floating_point():
                self._handles.append(inp.register_hook(self._grad_hook(record, "in")))
        return hook

    def _grad_hook(self, record: ModuleRecord, which: str):  # noqa: ANN202
        def hook(grad: Tensor) -> None:
            with torch.no_grad():
                bad = ~torch.isfinite(grad)
                if which == "out":
                    record.grad_out_bad = bad.any()
                else:
                    record.grad_in_bad, record.grad_in_rows = bad.any(), _bad_rows(bad, self.batch)
        return hook

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def first_nonfinite_output(self) -> ModuleRecord | None:
        """The first module, in forward order, whose output holds NaN/Inf."""
        if not self.records:
            return None
        counts = torch.stack([r.nonfinite for r in self.records]).cpu().tolist()
        return next((r for r, c in zip(self.records, counts, strict=True) if c), None)

    def backward_culprit(self) -> ModuleRecord | None:
        """The module where backward first made a non-finite gradient: walking backward (reverse forward
        order), the first whose output gradient is finite (or absent) while its input's is not."""
        for record in reversed(self.records):
            if record.grad_in_bad is not None and bool(record.grad_in_bad):
                if record.grad_out_bad is None or not bool(record.grad_out_bad):
                    return record
        return None

    def activations(self) -> list[dict[str, Any]]:
        """Per module in forward order: name, type, largest finite |output| and its count of NaN/Inf."""
        if not self.records:
            return []
        maxima = torch.stack([r.max_abs.float() for r in self.records]).cpu().tolist()
        counts = torch.stack([r.nonfinite for r in self.records]).cpu().tolist()
        return [{"module": r.name or "(net)", "type": r.kind, "max_abs": m, "nonfinite": int(c)}
                for r, m, c in zip(self.records, maxima, counts, strict=True)]
