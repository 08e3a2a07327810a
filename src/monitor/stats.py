"""Per-step statistics on the host, from a block of raw norms: raw, RMS and relative, per layer and global.

Why three forms of one gradient: a Frobenius norm grows with the layer's size (ResNet-152's conv1 at
width 1/16 has 36 weights, its fc 1,280), so raw norms of different layers cannot be compared, nor
held against one absolute limit. Two scale-free forms can:

- RMS `‖g‖/√n` (n = entries of the weight): the typical per-weight gradient, free of the layer's size.
- relative `‖g‖/‖θ‖`: the gradient against the weight it changes; under SGD a step moves the layer by
  η·‖g‖/‖θ‖ of itself, so it says whether a layer can learn at all, whatever its size or init scale.

The detectors read the relative forms (and the loss); the raw norms are kept for clipping and for
comparison with earlier runs. All of these are of the *data* gradient; the penalty's part is
reported apart (`penalty`, `penalty_norm`). A parameter without a gradient (`p.grad is None`) is
missing (NaN), never small.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from src.monitor.collector import StatsBlock
from src.monitor.layers import Layer

TINY = 1e-30  # floor before log10, so a zero gradient gives a finite (very negative) value


@dataclass
class Summary:
    """Rows are optimizer steps; `L` layers in forward order. Units: L2 norms of float32 tensors.

    loss: data loss of the step (mean over its micro-batches); NaN where not exposed.
    global_norm: ‖g‖ over all trainable parameters' data gradients together (pre-clipping), as
        `clip_grad_norm_` computes it; global_rms = global_norm/√N; global_rel = global_norm/‖θ‖.
    penalty_norm: ‖∂penalty/∂θ‖ over all parameters (NaN when no regularizer acts through the loss).
    nonfinite: NaN/Inf gradient values (or tensors); norm_overflow: a gradient norm is Inf/NaN while no
        value is (finite values beyond ~1e19 overflow float32 in the sum of squares).
    skipped: the AMP grad scaler skipped this step (it had a scaler and Inf/NaN values).
    nonfinite_layer: where a non-finite gradient showed first in backward order (the deepest one).
    first_last_ratio: relative gradient of the first layer over the last one's (of the layers that
        have a gradient); depth_slope: least-squares slope of log10(relative gradient) over the depth
        index, decades per layer (> 0: smaller toward the input).
    layer_*: (n, L) norm (raw), rms, rel, weight (‖θ‖) and penalty (raw, or None).
    """

    steps: np.ndarray
    loss: np.ndarray
    has_loss: np.ndarray
    global_norm: np.ndarray
    global_rms: np.ndarray
    global_rel: np.ndarray
    penalty_norm: np.ndarray
    nonfinite: np.ndarray
    norm_overflow: np.ndarray
    skipped: np.ndarray
    nonfinite_layer: list[str | None]
    first_last_ratio: np.ndarray
    depth_slope: np.ndarray
    layer_norm: np.ndarray
    layer_rms: np.ndarray
    layer_rel: np.ndarray
    layer_weight: np.ndarray
    layer_penalty: np.ndarray | None

    def __len__(self) -> int:
        return len(self.steps)


def _rowwise_first_last_and_slope(rel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First/last ratio and log-slope per row over the layers whose relative gradient is finite."""
    n, n_layers = rel.shape
    ratio, slope = np.full(n, np.nan), np.full(n, np.nan)
    if n_layers < 2:
        return ratio, slope
    valid = np.isfinite(rel)
    depth = np.arange(n_layers, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log10(np.maximum(np.where(valid, rel, 1.0), TINY))
    for i in range(n):
        v = valid[i]
        if v.sum() < 2:
            continue
        first, last = np.flatnonzero(v)[[0, -1]]
        ratio[i] = rel[i, first] / max(rel[i, last], TINY)
        x, y = depth[v] - depth[v].mean(), logs[i, v]
        slope[i] = float((y - y.mean()) @ x / np.sum(x**2))
    return ratio, slope


def summarize(block: StatsBlock, layers: list[Layer], param_labels: list[str], sizes: np.ndarray,
              with_scaler: bool = False) -> Summary:
    """The per-step statistics of `block` (see `Summary`).

    Args:
        layers: the tracked layers in forward order.
        param_labels: for each parameter, its layer's label or its own name (to say where NaN showed).
        sizes: (P,) entries of each parameter.
        with_scaler: the trainer steps through an AMP grad scaler (non-finite gradients = a skipped step).
    """
    n = len(block)
    index = [layer.param_index for layer in layers]
    present = ~block.missing
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        squares = np.where(present, block.grad, 0.0) ** 2
        global_norm = np.sqrt(squares.sum(axis=1))
        weight_all = np.sqrt((block.weight**2).sum(axis=1))
        total = np.maximum((sizes[None, :] * present).sum(axis=1), 1.0)
        global_rms = global_norm / np.sqrt(total)
        global_rel = global_norm / np.where(weight_all > 0, weight_all, np.nan)
        grad = np.where(block.missing, np.nan, block.grad)
        layer_norm = grad[:, index] if layers else np.zeros((n, 0))
        layer_weight = block.weight[:, index] if layers else np.zeros((n, 0))
        layer_rms = layer_norm / np.sqrt(sizes[index])[None, :] if layers else np.zeros((n, 0))
        layer_rel = layer_norm / np.where(layer_weight > 0, layer_weight, np.nan)
        if block.penalty is not None:
            penalty_norm = np.sqrt((block.penalty**2).sum(axis=1))
            layer_penalty = block.penalty[:, index] if layers else np.zeros((n, 0))
        else:
            penalty_norm, layer_penalty = np.full(n, np.nan), None
    nonfinite = block.nonfinite.sum(axis=1)
    norm_bad = (~np.isfinite(block.grad) & present).any(axis=1)
    norm_overflow = norm_bad & (nonfinite == 0)
    skipped = (nonfinite > 0) & with_scaler
    where = []
    for i in range(n):
        bad = np.flatnonzero((block.nonfinite[i] > 0) | (~np.isfinite(block.grad[i]) & present[i]))
        where.append(param_labels[bad[-1]] if len(bad) else None)  # backward runs from the output
    ratio, slope = _rowwise_first_last_and_slope(layer_rel)
    return Summary(
        steps=block.steps, loss=block.loss, has_loss=block.has_loss, global_norm=global_norm, global_rms=global_rms,
        global_rel=global_rel,
        penalty_norm=penalty_norm, nonfinite=nonfinite, norm_overflow=norm_overflow, skipped=skipped,
        nonfinite_layer=where, first_last_ratio=ratio, depth_slope=slope, layer_norm=layer_norm,
        layer_rms=layer_rms, layer_rel=layer_rel, layer_weight=layer_weight, layer_penalty=layer_penalty,
    )
