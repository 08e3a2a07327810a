"""The penalty's gradient, added to `p.grad` once per optimizer step, and its per-tensor norms.

`ClassificationModule.training_step` backpropagates the data loss alone, so after backward
`p.grad` is exactly the data gradient (what the gradient-health monitor reads, at the callbacks'
`on_before_optimizer_step`). Then the module's own `on_before_optimizer_step` — which Lightning
calls right after the callbacks' and before gradient clipping and the optimizer step — adds the
regularizers' closed-form gradients here. The update is the one of `loss + penalty`; only the
order of the sums differs (float32 rounding). With gradient accumulation the penalty is added
once per optimizer step, at full strength: as `loss + penalty` per micro-batch divided by the
number of micro-batches, which is what Lightning did before.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

from src import foreach


@torch.no_grad()
def add_penalty_gradient(
    net: nn.Module, regularizers: Iterable[Any], per_regularizer: dict[str, Tensor] | None = None
) -> Tensor | None:
    """Add every regularizer's `penalty_gradient(net)` to `p.grad`; return the penalty gradient's L2
    norm per trainable parameter of `net` (in `net.named_parameters()` order, 0 where none), on the
    device, or None when no regularizer acts through the loss. No host synchronization.

    `per_regularizer`, when given, receives each regularizer's own global L2 norm (device scalar, by
    its `name`), so that each term's share can be logged beside the total.
    """
    total: dict[int, tuple[Tensor, Tensor]] = {}
    for reg in regularizers:
        pairs = getattr(reg, "penalty_gradient", lambda _: [])(net)
        if per_regularizer is not None and pairs:
            per_regularizer[reg.name] = torch.linalg.vector_norm(foreach.norms([g for _, g in pairs]))
        for param, grad in pairs:
            if id(param) in total:  # two regularizers on one tensor (l1 + l2): their gradients add
                total[id(param)] = (param, total[id(param)][1] + grad)
            else:
                total[id(param)] = (param, grad)
    if not total:
        return None
    trainable = [p for p in net.parameters() if p.requires_grad]
    zero = torch.zeros((), dtype=trainable[0].dtype, device=trainable[0].device)
    norms = foreach.norms([total[id(p)][1] if id(p) in total else zero for p in trainable])
    with_grad = [(p, g) for p, g in total.values() if p.grad is not None]
    foreach.add_([p.grad for p, _ in with_grad], [g for _, g in with_grad])
    for param, grad in total.values():
        if param.grad is None:  # a penalized tensor the data loss does not reach
            param.grad = grad
    return norms


@torch.no_grad()
def step_gate(net: nn.Module) -> Tensor:
    """0-d tensor, 1 when every gradient value of `net` is finite and 0 otherwise: whether a grad scaler
    steps the optimizer (it skips on any Inf/NaN value of the unscaled gradients; counted value by
    value here, as the scaler does, so finite values whose norm would overflow still step). Stays on
    the device."""
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    if not grads:
        return torch.ones(())
    return (foreach.nonfinite_counts(grads).sum() == 0).to(grads[0].dtype)
