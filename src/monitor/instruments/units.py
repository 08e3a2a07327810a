"""Unit health: dead ReLU units, saturated tanh/sigmoid units, and the forward signal's size per layer.

On a due step (the same kind of schedule as the signal's), forward hooks run during the step's
forward pass(es); every measure is a device scalar, read at the flush. Each activation call is
attributed to the tracked layer (conv, linear) called last before it, so `dead/03.features.6` is
the ReLU that follows layer `03.features.6` (through its batch norm, if any); a ReLU module called
after several layers (ResNet's blocks reuse one) counts once per call, each to its own layer.

- `dead/<label>`: fraction of the ReLU's units that are zero for *every* example of the batch. A
  unit is one entry of the activation per example (a channel at one position for a conv): it gives
  no gradient to anything below it for this batch. Several calls/micro-batches: their mean.
- `saturated/<label>`: fraction of the tanh/sigmoid's entries (examples × units) whose derivative is
  below `saturation_limit` × its largest value (tanh′ ≤ 1 at 0, sigmoid′ ≤ 1/4 at 0). The default
  0.01 means |z| > 2.99 for tanh (tanh′ = 1 − y²) and |z| > 5.3 for sigmoid (σ′ = y(1 − y)):
  the unit passes on less than 1% of the signal it could.
- `act_rms/<label>`: RMS of the tracked layer's output z (the tensor whose gradient the signal
  is), in the units of z: exploding activations show here before the loss does.
- `dead/max`: the largest `dead/<label>` of the sample (the `dead_units` event reads it).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from src.monitor.instruments.base import Instrument, per_layer

SATURATING: dict[type[nn.Module], float] = {nn.Tanh: 1.0, nn.Sigmoid: 0.25}  # largest derivative


class UnitHealthInstrument(Instrument):
    name = "units"

    def __init__(self, every_n_steps: int, saturation_limit: float = 0.01) -> None:
        super().__init__(every_n_steps)
        self.saturation_limit = saturation_limit
        self._step: int | None = None
        self._current: str | None = None
        self._values: dict[str, list[Tensor]] = {}

    def bind(self, net: nn.Module, layer_names: list[str]) -> None:
        super().bind(net, layer_names)
        self.activations = [m for m in net.modules() if isinstance(m, (nn.ReLU, *SATURATING))]

    def before_forward(self, step: int, trainer: Any, pl_module: Any, batch: Any) -> None:
        if not self.due(step) or self.handles:
            return
        self._step, self._values, self._current = step, {}, None
        for name, module in self.layer_modules.items():
            self.handles.append(module.register_forward_hook(self._layer(name)))
        for module in self.activations:
            self.handles.append(module.register_forward_hook(self._activation))

    def _add(self, key: str, value: Tensor) -> None:
        self._values.setdefault(key, []).append(value)

    def _layer(self, name: str):  # noqa: ANN202
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            self._current = name
            if isinstance(output, Tensor) and output.numel():
                with torch.no_grad():
                    self._add(f"act_rms/{name}", output.detach().float().pow(2).mean().sqrt())

        return hook

    @torch.no_grad()
    def _activation(self, module: nn.Module, args: Any, output: Any) -> None:
        if self._current is None or not isinstance(output, Tensor) or output.dim() < 2 or not output.numel():
            return  # an activation before any tracked layer, or a shape without a batch
        y = output.detach()
        if isinstance(module, nn.ReLU):
            alive = (y > 0).flatten(1).any(dim=0)  # a unit is alive when some example passes it
            self._add(f"dead/{self._current}", 1.0 - alive.float().mean())
            return
        top = next(v for cls, v in SATURATING.items() if isinstance(module, cls))
        y = y.float()
        slope = 1.0 - y * y if isinstance(module, nn.Tanh) else y * (1.0 - y)
        self._add(f"saturated/{self._current}", (slope < self.saturation_limit * top).float().mean())

    def after_backward(self, step: int, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        if self._step != step:
            return
        self.detach()
        self._step, self._current = None, None
        keys = sorted(self._values)
        self.store(step, keys, [torch.stack(self._values[k]).mean() for k in keys])
        self._values = {}

    def derive(self, sample: dict[str, float]) -> dict[str, float]:
        dead = per_layer(sample, "dead")
        if dead:
            sample["dead/max"] = max(v for _, v in dead)
        return sample
