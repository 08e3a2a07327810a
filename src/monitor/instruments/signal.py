"""The back-propagated signal: ‖∂L/∂z‖ per tracked layer, z the layer's output, L the data loss.

A weight gradient is g_W = δ·aᵀ (δ = ∂L/∂z, a the layer's input), so the forward attenuation of the
activations can cancel the backward attenuation of δ: a deep tanh net with a small init has a
healthy weight-gradient first/last ratio while δ at its first layer is 1e-7 of the last layer's.
Vanishing and exploding gradients in the literature (Hochreiter 1991; Glorot & Bengio 2010;
Schoenholz et al. 2017) are statements about δ; a layer of dead ReLUs makes δ exactly zero below it.

On a due step a forward hook on each tracked layer (conv, linear: `layers.py`) registers a tensor
hook on its output; the backward pass then hands each hook ∂L/∂z, whose sum of squares and size
are accumulated on the device (several micro-batches, a module called more than once: one RMS over
all of them). The loss is the one `training_step` returns: the data loss alone (the penalty's
gradient joins `p.grad` later, in the module's `on_before_optimizer_step`), as Lightning scales it
(divided by the accumulation count; under fp16 multiplied by the grad scaler's scale, which is
divided out here: one host read of the scale on a due step). The hooks are removed at
`on_before_optimizer_step`: other steps cost nothing.

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
from src.monitor.instruments.base import Instrument, per_layer


class SignalInstrument(Instrument):
    name = "signal"

    def __init__(self, every_n_steps: int) -> None:
        super().__init__(every_n_steps)
        self._sums: dict[str, list[Tensor]] = {}
        self._sizes: dict[str, int] = {}
        self._step: int | None = None

    def before_forward(self, step: int, trainer: Any, pl_module: Any, batch: Any) -> None:
        if not self.due(step) or self.handles:
            return  # not due, or attached already (a later micro-batch of the same step)
        self._step, self._sums, self._sizes = step, {}, {}
        for name, module in self.layer_modules.items():
            self.handles.append(module.register_forward_hook(self._forward(name)))

    def _forward(self, name: str):  # noqa: ANN202
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if isinstance(output, Tensor) and output.requires_grad and torch.is_grad_enabled():
                output.register_hook(self._backward(name))

        return hook

    def _backward(self, name: str):  # noqa: ANN202
        def hook(grad: Tensor) -> None:
            self._sums.setdefault(name, []).append(grad.detach().float().pow(2).sum())
            self._sizes[name] = self._sizes.get(name, 0) + grad.numel()

        return hook

    def after_backward(self, step: int, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        if self._step != step:
            return
        self.detach()
        self._step = None
        names = [n for n in self.layer_modules if n in self._sums]
        if not names:
            return
        scaler = grad_scaler(trainer)
        scale = float(scaler.get_scale()) if scaler is not None else 1.0  # fp16: δ arrives multiplied by it
        values = [torch.stack(self._sums[n]).sum().div(self._sizes[n]).sqrt().div(scale) for n in names]
        self.store(step, [f"signal/{n}" for n in names], values)
        self._sums, self._sizes = {}, {}

    def derive(self, sample: dict[str, float]) -> dict[str, float]:
        layers = per_layer(sample, "signal")
        if len(layers) >= 2:
            first, last = layers[0][1], layers[-1][1]
            sample["signal/first_last_ratio"] = first / last if last > 0 else math.nan
        return sample
