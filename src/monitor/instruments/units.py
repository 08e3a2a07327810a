"""Unit health: dead ReLU units, saturated tanh/sigmoid units, and the forward signal's size per layer.

On a due step (the same kind of schedule as the signal's), forward hooks run during the step's
forward pass(es); each keeps one device count or norm per call (two or three operations, sizes stay on
the host), stacked into one device row at `on_before_optimizer_step` and turned into fractions and RMS
on the host when the flush reads it: no host read on the step, no per-layer arithmetic on the device.
Each activation call is attributed to the tracked layer (conv, linear) called last before it, so `dead/03.features.6` is
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

import math
from typing import Any

import torch
from torch import Tensor, nn

from src.monitor.instruments.base import Instrument, Sample, per_layer
from src.monitor.instruments.base import _label as label_key

SATURATING: dict[type[nn.Module], float] = {nn.Tanh: 1.0, nn.Sigmoid: 0.25}  # largest derivative


class UnitHealthInstrument(Instrument):
    name = "units"

    def __init__(self, every_n_steps: int, saturation_limit: float = 0.01) -> None:
        super().__init__(every_n_steps)
        self.saturation_limit = saturation_limit
        self._step: int | None = None
        self._current: str | None = None
        self._values: list[Tensor] = []  # one device count or norm per hooked call
        self._calls: list[tuple[str, int]] = []  # (key, its divisor: units, entries or √entries) of each
        self._layout: list[list[tuple[str, int | float]]] = []  # per stored row: its calls

    def bind(self, net: nn.Module, layer_names: list[str]) -> None:
        super().bind(net, layer_names)
        self.activations = [m for m in net.modules() if isinstance(m, (nn.ReLU, *SATURATING))]

    def before_forward(self, step: int, trainer: Any, pl_module: Any, batch: Any) -> None:
        if not self.due(step) or self.handles:
            return
        self._step, self._values, self._calls, self._current = step, [], [], None
        for name, module in self.layer_modules.items():
            self.handles.append(module.register_forward_hook(self._layer(name)))
        for module in self.activations:
            self.handles.append(module.register_forward_hook(self._activation))

    def _add(self, key: str, value: Tensor, divisor: float) -> None:
        self._values.append(value)
        self._calls.append((key, divisor))

    def _layer(self, name: str):  # noqa: ANN202
        @torch.no_grad()
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            self._current = name
            if isinstance(output, Tensor) and output.numel():  # RMS = ‖z‖ / √entries
                self._add(f"act_rms/{name}", torch.linalg.vector_norm(output, dtype=torch.float32),
                          math.sqrt(output.numel()))

        return hook

    @torch.no_grad()
    def _activation(self, module: nn.Module, args: Any, output: Any) -> None:
        if self._current is None or not isinstance(output, Tensor) or output.dim() < 2 or not output.numel():
            return  # an activation before any tracked layer, or a shape without a batch
        if isinstance(module, nn.ReLU):  # a unit is alive when some example passes it: its batch maximum > 0
            self._add(f"dead/{self._current}", torch.count_nonzero(output.amax(dim=0)),
                      output.numel() // output.shape[0])
            return
        y = output if output.dtype == torch.float32 else output.float()  # compared in float32, as computed
        bound = math.sqrt(1.0 - self.saturation_limit)
        if isinstance(module, nn.Tanh):  # tanh′ = 1 − y² below the limit ⟺ |y| above √(1 − limit)
            far = y.abs() > bound
        else:  # σ′ = y(1 − y) below limit × 1/4 ⟺ |y − 1/2| above √(1 − limit) / 2
            far = (y - 0.5).abs() > 0.5 * bound
        self._add(f"saturated/{self._current}", torch.count_nonzero(far), output.numel())

    def after_backward(self, step: int, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        if self._step != step:
            return
        self.detach()
        self._step, self._current = None, None
        if self._values:  # one device row (counts and norms, float32); its layout stays on the host
            self.rows.append((step, [], torch.stack(self._values)))  # counts promoted to float32 by the stack
            self._layout.append(self._calls)
        self._values, self._calls = [], []

    def read(self, labels: dict[str, str]) -> list[Sample]:
        """One host copy per stored row: per key, the mean over its calls of the fraction or RMS."""
        samples = []
        for (step, _, row), calls in zip(self.rows, self._layout, strict=True):
            per_key: dict[str, list[float]] = {}
            for (key, divisor), value in zip(calls, row.cpu().tolist(), strict=True):
                fraction = value / divisor
                per_key.setdefault(key, []).append(1.0 - fraction if key.startswith("dead/") else fraction)
            sample = {label_key(k, labels): sum(v) / len(v) for k, v in sorted(per_key.items())}
            samples.append((step, self.derive(sample)))
        self.rows, self._layout = [], []
        return samples

    def derive(self, sample: dict[str, float]) -> dict[str, float]:
        dead = per_layer(sample, "dead")
        if dead:
            sample["dead/max"] = max(v for _, v in dead)
        return sample
