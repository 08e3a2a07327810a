"""On-device gradient statistics: what is measured each step, and how it reaches the host cheaply.

A *layer* is a module that owns a weight of two or more dimensions (conv and linear layers,
embeddings), taken in `named_modules()` order, which is the order the builders register them
and, for every model here, the forward order (a ResNet's `downsample` conv comes right after the
block's `conv3`, beside which it runs). Per-layer statistics are norms of that weight and of its
gradient; biases and normalization-layer affine parameters belong to no layer but are counted
in the global gradient norm and in the non-finite check, which cover every trainable parameter
(what `clip_grad_norm_` sees).

Cost: each step makes one fused norm (`src/foreach.py`) over the gradients and writes the result
into a preallocated buffer on the training device; nothing leaves the device until `read()`,
which the monitor calls once every N steps. Weight norms (a second pass over the weights) are
taken only on the rows that will be logged, and relative updates only every M steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from src import foreach

TINY = 1e-30  # floor before log10/division, so a zero norm gives a finite (very negative) value


@dataclass(frozen=True)
class Layer:
    """One tracked layer: its depth in forward order and its module name inside the network."""

    depth: int
    name: str
    param_index: int  # position of the layer's weight among the tracked parameters
    width: int = 2  # digits of the zero-padded depth index

    @property
    def label(self) -> str:
        """`03.features.6`: the depth index keeps metric names sorted in forward order."""
        return f"{self.depth:0{self.width}d}.{self.name}"


def find_layers(net: nn.Module, param_names: list[str]) -> list[Layer]:
    """The layers of `net` (see the module docstring), given the names of its tracked parameters."""
    index = {name: i for i, name in enumerate(param_names)}
    found = []
    for name, module in net.named_modules():
        weight = dict(module.named_parameters(recurse=False)).get("weight")
        key = f"{name}.weight" if name else "weight"
        if weight is not None and weight.dim() >= 2 and key in index:
            found.append((name or "net", index[key]))
    width = max(2, len(str(len(found) - 1)))
    return [Layer(depth, name, pi, width) for depth, (name, pi) in enumerate(found)]


@dataclass
class StatsBlock:
    """What one `read()` returns, on the host. Rows are optimizer steps, in order.

    steps: (n,) `trainer.global_step` at `on_before_optimizer_step` (0 = the first update).
    param_grad_norms: (n, P) L2 norm of each tracked parameter's gradient (0 where it had none).
    nonfinite_per_param: (n, P) non-finite gradient values (exact counts) or 1/0 flags per tensor.
    loss: (n,) the data loss of each step (`pl_module.last_loss`); None when the module exposes none.
    weight_norms: {row: (L,) weight L2 norms} for the rows collected with weights.
    """

    steps: np.ndarray
    param_grad_norms: np.ndarray
    nonfinite_per_param: np.ndarray
    loss: np.ndarray | None
    weight_norms: dict[int, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.steps)


class GradStatsCollector:
    """Gathers per-step gradient norms into an on-device buffer; `read()` moves them to the host.

    Args:
        net: the network whose parameters are tracked (for names and layers).
        capacity: rows the buffer holds; the caller reads it before it is full.
        count_values: True counts each NaN/Inf gradient *value* (one extra pass over the
            gradients per step); False flags each gradient *tensor* whose L2 norm is not finite,
            which the norm pass gives for free (a norm is NaN/Inf exactly when a value is, or when
            finite values overflow float32 in the sum of squares, i.e. exceed about 1e19).
    """

    def __init__(self, net: nn.Module, capacity: int, count_values: bool = False) -> None:
        named = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
        self.param_names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self.layers = find_layers(net, self.param_names)
        self.capacity = capacity
        self.count_values = count_values
        self._layer_weights = [self.params[layer.param_index] for layer in self.layers]
        self._buffer: Tensor | None = None
        self._zero: Tensor | None = None
        self._steps: list[int] = []
        self._has_loss: list[bool] = []
        self._weight_rows: list[int] = []

    @property
    def pending(self) -> int:
        """Rows collected since the last `read()`."""
        return len(self._steps)

    def _columns(self) -> tuple[int, int, int]:
        p, n_layers = len(self.params), len(self.layers)
        return p, p + 1, p + 1 + n_layers  # loss column, weight-norm start, count start

    def _allocate(self, device: torch.device) -> None:
        p = len(self.params)
        loss_col, w_start, c_start = self._columns()
        width = c_start + (p if self.count_values else 0)
        self._buffer = torch.zeros(self.capacity, width, dtype=torch.float32, device=device)
        self._zero = torch.zeros((), dtype=torch.float32, device=device)

    @torch.no_grad()
    def collect(self, step: int, loss: Tensor | None, with_weights: bool = False) -> None:
        """Record one step's gradients (call where they are final: `on_before_optimizer_step`).

        Makes no host synchronization: every result stays on the device until `read()`.
        """
        if self.pending >= self.capacity:
            raise RuntimeError("gradient statistics buffer is full: read() it every `capacity` steps")
        if self._buffer is None or self._buffer.device != self.params[0].device:
            self._allocate(self.params[0].device)
        assert self._buffer is not None and self._zero is not None
        row = self._buffer[self.pending]
        p = len(self.params)
        loss_col, w_start, c_start = self._columns()
        grads = [g.grad if g.grad is not None else self._zero for g in self.params]
        row[:p].copy_(foreach.norms(grads))
        if loss is not None:
            row[loss_col].copy_(loss.detach().float().reshape(()))
        if with_weights and self.layers:
            row[w_start:c_start].copy_(foreach.norms([w.detach() for w in self._layer_weights]))
            self._weight_rows.append(self.pending)
        if self.count_values:
            row[c_start:].copy_(foreach.nonfinite_counts(grads))
        self._steps.append(int(step))
        self._has_loss.append(loss is not None)

    def read(self) -> StatsBlock:
        """Move the collected rows to the host (the one synchronization) and empty the buffer."""
        n = self.pending
        p = len(self.params)
        loss_col, w_start, c_start = self._columns()
        data = self._buffer[:n].cpu().numpy().astype(np.float64) if n else np.zeros((0, c_start))
        norms = data[:, :p]
        if self.count_values:
            counts = data[:, c_start:]
        else:
            counts = (~np.isfinite(norms)).astype(np.float64)
        loss = data[:, loss_col].copy() if n and all(self._has_loss) else None
        block = StatsBlock(
            steps=np.array(self._steps, dtype=np.int64),
            param_grad_norms=norms,
            nonfinite_per_param=counts,
            loss=loss,
            weight_norms={r: data[r, w_start:c_start].copy() for r in self._weight_rows},
        )
        self._steps, self._has_loss, self._weight_rows = [], [], []
        return block


class RelativeUpdateTracker:
    """‖Δθ‖/‖θ‖ per layer for one optimizer step: weights copied before it, compared after it.

    Copying the weights costs one pass over them, so the monitor asks for it only every M steps.
    Results stay on the device until `read()`.
    """

    def __init__(self, weights: list[Tensor]) -> None:
        self.weights = weights
        self._before: list[Tensor] | None = None
        self._step: int | None = None
        self._results: list[tuple[int, Tensor]] = []

    @property
    def waiting(self) -> int | None:
        """The step whose update is awaited (None when no snapshot is held)."""
        return self._step

    @torch.no_grad()
    def snapshot(self, step: int) -> None:
        self._before = [w.detach().clone() for w in self.weights]
        self._step = int(step)

    @torch.no_grad()
    def finish(self) -> None:
        """Call once the optimizer step after `snapshot` has been applied."""
        if self._before is None or self._step is None:
            return
        delta = foreach.norms(foreach.differences([w.detach() for w in self.weights], self._before))
        before = foreach.norms(self._before).clamp_min(TINY)
        self._results.append((self._step, delta / before))
        self._before, self._step = None, None

    def read(self) -> list[tuple[int, np.ndarray]]:
        out = [(step, ratio.cpu().numpy().astype(np.float64)) for step, ratio in self._results]
        self._results = []
        return out


def summarize(block: StatsBlock, layers: list[Layer]) -> dict[str, np.ndarray]:
    """Per-step scalars from a block (host side, numpy).

    global_norm: L2 norm over all gradients together (pre-clipping), as `clip_grad_norm_` computes it.
    nonfinite: non-finite gradient values (or tensors, see `GradStatsCollector`).
    layer_grad_norms: (n, L) per layer in forward order.
    first_last_ratio: first layer's gradient norm / last layer's (< 1: smaller near the input).
    depth_slope: least-squares slope of log10(layer gradient norm) against depth index, in decades
        per layer; positive when gradients shrink toward the input (the vanishing pattern).
    """
    norms = block.param_grad_norms
    with np.errstate(over="ignore", invalid="ignore"):
        global_norm = np.sqrt(np.sum(norms**2, axis=1))
    layer_norms = norms[:, [layer.param_index for layer in layers]] if layers else np.zeros((len(block), 0))
    n_layers = layer_norms.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        if n_layers >= 2:
            ratio = layer_norms[:, 0] / np.maximum(layer_norms[:, -1], TINY)
            depth = np.arange(n_layers, dtype=np.float64)
            centered = depth - depth.mean()
            logs = np.log10(np.maximum(layer_norms, TINY))
            slope = (logs - logs.mean(axis=1, keepdims=True)) @ centered / np.sum(centered**2)
        else:
            ratio = slope = np.full(len(block), np.nan)
    return {
        "global_norm": global_norm,
        "nonfinite": block.nonfinite_per_param.sum(axis=1),
        "layer_grad_norms": layer_norms,
        "first_last_ratio": ratio,
        "depth_slope": slope,
    }
