"""The back-propagated signal: ‖∂L/∂z‖ per tracked layer, z the layer's output, L the data loss.

A weight gradient is g_W = δ·aᵀ (δ = ∂L/∂z, a the layer's input), so the forward attenuation of the
activations can cancel the backward attenuation of δ: a deep tanh net with a small init has a
healthy weight-gradient first/last ratio while δ at its first layer is 1e-7 of the last layer's.
Vanishing and exploding gradients in the literature (Hochreiter 1991; Glorot & Bengio 2010;
Schoenholz et al. 2017) are statements about δ; a layer of dead ReLUs makes δ exactly zero below it.

On a due step a forward hook on each tracked layer (conv, linear: `layers.py`) registers a tensor
hook on its output; the backward pass then hands each hook ∂L/∂z, of which one operation keeps the
float32 norm on the device (its size is known on the host). At `on_before_optimizer_step` the norms
are stacked into one device row (and, under fp16, a copy of the grad scaler's scale: δ arrives
multiplied by it); the RMS, √(Σ‖δ‖² / Σ size) ÷ scale over every call of the layer (micro-batches,
a module called more than once), is computed on the host when the flush reads the row. So a due step
costs one kernel per layer call plus one stack, and no host read. The loss is the one
`training_step` returns: the data loss alone (the penalty's gradient joins `p.grad` later, in the
module's `on_before_optimizer_step`), as Lightning scales it (divided by the accumulation count).
The hooks are removed at `on_before_optimizer_step`: other steps cost nothing.

Keys: `signal/<label>` = RMS of ∂L/∂z over the whole tensor (batch included), in units of the loss
per unit of z; `signal/first_last_ratio` = the input-side layer's over the output-side layer's
(forward order; 0 when δ is cut to zero below a dead layer).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from src.amp import grad_scaler
from src.monitor.instruments.base import Instrument, Sample, per_layer
from src.monitor.instruments.base import _label as label_key


def device_scale(scaler: Any, device: torch.device) -> Tensor:
    """A copy of the `GradScaler`'s current scale on `device`, without a host read (`get_scale()` reads it).
    The scale tensor is torch's private `_get_scale_async()`; before the scaler's first use, or without that
    method, the public `get_scale()` (a host number then, filled on the device by a kernel, not copied)."""
    scale = getattr(scaler, "_get_scale_async", lambda: None)()
    if isinstance(scale, Tensor):
        return scale.detach().float().reshape(()).clone()
    return torch.full((), float(scaler.get_scale()), device=device)


class SignalInstrument(Instrument):
    name = "signal"

    def __init__(self, every_n_steps: int) -> None:
        super().__init__(every_n_steps)
        self._norms: list[Tensor] = []  # ‖δ‖ of each hooked call, float32, on the device
        self._calls: list[tuple[str, int]] = []  # (layer, size of δ) of each, on the host
        self._layout: list[tuple[list[tuple[str, int]], bool]] = []  # per stored row: its calls, has a scale
        self._step: int | None = None

    def before_forward(self, step: int, trainer: Any, pl_module: Any, batch: Any) -> None:
        if not self.due(step) or self.handles:
            return  # not due, or attached already (a later micro-batch of the same step)
        self._step, self._norms, self._calls = step, [], []
        for name, module in self.layer_modules.items():
            self.handles.append(module.register_forward_hook(self._forward(name)))

    def _forward(self, name: str):  # noqa: ANN202
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if isinstance(output, Tensor) and output.requires_grad and torch.is_grad_enabled():
                output.register_hook(self._backward(name))

        return hook

    def _backward(self, name: str):  # noqa: ANN202
        @torch.no_grad()
        def hook(grad: Tensor) -> None:
            self._norms.append(torch.linalg.vector_norm(grad, dtype=torch.float32))
            self._calls.append((name, grad.numel()))

        return hook

    def after_backward(self, step: int, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        if self._step != step:
            return
        self.detach()
        self._step = None
        if not self._norms:
            return
        scaler = grad_scaler(trainer)
        norms = self._norms + ([device_scale(scaler, self._norms[0].device)] if scaler is not None else [])
        self.rows.append((step, [], torch.stack(norms)))  # one device row; its layout stays on the host
        self._layout.append((self._calls, scaler is not None))
        self._norms, self._calls = [], []

    def read(self, labels: dict[str, str]) -> list[Sample]:
        """One host copy per stored row; each layer's RMS over its calls, divided by the step's scale."""
        samples = []
        for (step, _, row), (calls, scaled) in zip(self.rows, self._layout, strict=True):
            values = row.cpu().tolist()
            scale = values.pop() if scaled else 1.0
            squares: dict[str, float] = {}
            sizes: dict[str, int] = {}
            for (name, size), norm in zip(calls, values, strict=True):
                squares[name] = squares.get(name, 0.0) + norm * norm
                sizes[name] = sizes.get(name, 0) + size
            order = [n for n in self.layer_modules if n in squares]
            sample = {label_key(f"signal/{n}", labels): math.sqrt(squares[n] / sizes[n]) / scale for n in order}
            samples.append((step, self.derive(sample)))
        self.rows, self._layout = [], []
        return samples

    def derive(self, sample: dict[str, float]) -> dict[str, float]:
        layers = per_layer(sample, "signal")
        if len(layers) >= 2:
            first, last = layers[0][1], layers[-1][1]
            sample["signal/first_last_ratio"] = first / last if last > 0 else math.nan
        return sample
