"""The tensors a weight regularizer acts on, and the tensor operations the regularizers share.

Which tensors: weights of convolution and linear layers; their biases and the affine scale and shift of
normalization layers only when asked. Units: sums are over individual weights (Σ|θ|, Σθ²); learning
rates η are the optimizer groups' current values (schedulers included).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

CONV_AND_LINEAR = (
    nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear,
)  # the layers whose weights are penalized (lazy variants are subclasses)
NORM_LAYERS = (
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.InstanceNorm1d, nn.InstanceNorm2d,
    nn.InstanceNorm3d, nn.GroupNorm, nn.LayerNorm,
)  # their scale and shift only with `include_norm`


def select_parameters(net: nn.Module, include_bias: bool = False, include_norm: bool = False) -> list[Tensor]:
    """Conv/linear weights, plus their biases and norm-layer parameters when asked; each tensor once."""
    chosen: dict[int, Tensor] = {}
    for module in net.modules():
        if isinstance(module, CONV_AND_LINEAR):
            names = ("weight", "bias") if include_bias else ("weight",)
        elif isinstance(module, NORM_LAYERS):
            names = ("weight", "bias") if include_norm else ()
        else:
            continue
        for name in names:
            param = getattr(module, name, None)
            if isinstance(param, Tensor) and param.requires_grad:
                chosen.setdefault(id(param), param)
    return list(chosen.values())


def _lr_of(optimizer: torch.optim.Optimizer) -> dict[int, float]:
    """Current learning rate η of every parameter, from its optimizer group (schedulers included)."""
    return {id(p): float(group["lr"]) for group in optimizer.param_groups for p in group["params"]}


def grouped_by_lr(params: Iterable[Tensor], optimizer: torch.optim.Optimizer) -> dict[float, list[Tensor]]:
    """The tensors the optimizer updates, grouped by their group's current learning rate η."""
    lr = _lr_of(optimizer)
    groups: dict[float, list[Tensor]] = {}
    for p in params:
        if id(p) in lr:  # a frozen or unoptimized tensor is not touched
            groups.setdefault(lr[id(p)], []).append(p)
    return groups


def abs_sum(params: list[Tensor]) -> Tensor:
    """Σ|θ| over all tensors; autograd's subgradient of |θ| is sign(θ), 0 at θ = 0."""
    return torch.stack([p.abs().sum() for p in params]).sum()


def square_sum(params: list[Tensor]) -> Tensor:
    """Σθ² over all tensors (gradient 2θ)."""
    return torch.stack([p.square().sum() for p in params]).sum()


@torch.no_grad()
def soft_threshold_(params: list[Tensor], threshold: float | Tensor) -> None:
    """In place: θ ← sign(θ)·max(|θ| − threshold, 0); `threshold` a number or a 0-d tensor (0: unchanged)."""
    for p in params:
        p.copy_(p.sign() * (p.abs() - threshold).clamp_(min=0))
