"""`reg/weight_norm` and `reg/sparsity`: what the weight regularizers do to the weights, on the logged steps."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from src import foreach
from src.training.penalized import select_parameters
from src.training.regularizers import Regularizer

SMALL = 1e-3  # |θ| below this counts as "small" in `reg/small_fraction` (absolute units of the weights)


def weight_statistics(net: nn.Module, regularizers: Iterable[Regularizer]) -> dict[str, Tensor]:
    """On-device `reg/weight_norm` (‖θ‖₂ over the union of penalized tensors) and, when a sparsifying
    regularizer is selected, `reg/sparsity` (fraction of those entries exactly 0). Always `reg/small_fraction`:
    the fraction of those entries with |θ| < `SMALL` (1e-3) — a subgradient L1 makes weights small, never exactly
    0, so sparsity alone would miss its late sparsification; baseline runs get it too, for comparison.

    With no weight regularizer (none, or dropout alone) the norm is over the default selection
    (conv and linear weights), so baseline runs are comparable. No host sync happens here.
    """
    regularizers = list(regularizers)
    chosen: dict[int, Tensor] = {}
    for reg in regularizers:
        for p in reg.penalized(net):
            chosen.setdefault(id(p), p)
    params = list(chosen.values()) or select_parameters(net)
    if not params:
        return {}
    detached = [p.detach() for p in params]
    stats = {"reg/weight_norm": torch.linalg.vector_norm(foreach.norms(detached))}
    small = torch.stack([(p.abs() < SMALL).sum() for p in detached]).sum()
    stats["reg/small_fraction"] = small.float() / sum(p.numel() for p in detached)
    if any(reg.sparsifies for reg in regularizers):
        zeros = torch.stack([(p == 0).sum() for p in detached]).sum()
        stats["reg/sparsity"] = zeros.float() / sum(p.numel() for p in detached)
    return stats
