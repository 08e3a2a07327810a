"""What every instrument shares: its schedule, where the monitor calls it, and its samples on the device.

An instrument measures one quantity that the gradient statistics cannot see (the back-propagated
signal, unit health, sharpness), on its own schedule: on a step `s` with `s % every_n_steps == 0`
(0 = never). It works in up to three places of a training step, all of which do nothing on the
other steps (no hooks attached, no kernel launched):

- `before_forward` (the callbacks' `on_train_batch_start`): attach hooks for this step;
- `after_backward` (`on_before_optimizer_step`: the data gradient is final, the penalty's not yet
  added): remove the hooks, turn what they gathered into one row of device values;
- `after_update` (`on_train_batch_end`: after the optimizer step).

Nothing leaves the device until `read()`, which the monitor calls once per flush: one host copy of
the rows gathered since, as `(step, {metric key: value})`. Layers are keyed by module name on the
device side (the monitor learns the layers' forward order only after the first forward pass) and
turned into labels (`03.features.6`) at the read.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

Sample = tuple[int, dict[str, float]]  # (optimizer step, {metric key: value})


class Instrument:
    """One quantity on one schedule. Subclasses set `name` and override the hooks they need."""

    name: ClassVar[str]
    reads_host: ClassVar[bool] = False  # its due steps read the host (the monitor makes them flush steps)

    def __init__(self, every_n_steps: int) -> None:
        self.every_n_steps = every_n_steps
        self.handles: list[RemovableHandle] = []
        self.rows: list[tuple[int, list[str], Tensor]] = []  # (step, keys, device values), unread

    def due(self, step: int) -> bool:
        return self.every_n_steps > 0 and step % self.every_n_steps == 0

    def bind(self, net: nn.Module, layer_names: list[str]) -> None:
        """The network and its tracked layers' module names (registration order; `net` for the root)."""
        self.net = net
        modules = dict(net.named_modules())
        self.layer_modules = {name: (net if name == "net" else modules[name]) for name in layer_names}

    def before_forward(self, step: int, trainer: Any, pl_module: Any, batch: Any) -> None:
        """On a due step, before its (first) forward pass."""

    def after_backward(self, step: int, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        """After the step's backward passes, before the optimizer step."""

    def after_update(self, step: int, trainer: Any, pl_module: Any) -> None:
        """After the optimizer step of `step`."""

    def detach(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def store(self, step: int, keys: list[str], values: list[Tensor]) -> None:
        """One row of device scalars (stacked: one small tensor, no host read)."""
        if keys:
            self.rows.append((step, keys, torch.stack([v.detach().float().reshape(()) for v in values])))

    def read(self, labels: dict[str, str]) -> list[Sample]:
        """The rows gathered since the last read, on the host (one copy per row), layer names as labels;
        `derive` adds the summaries (ratios, maxima)."""
        samples = []
        for step, keys, values in self.rows:
            host = values.cpu().tolist()
            sample = {_label(key, labels): float(v) for key, v in zip(keys, host, strict=True)}
            samples.append((step, self.derive(sample)))
        self.rows = []
        return samples

    def derive(self, sample: dict[str, float]) -> dict[str, float]:
        """Summaries computed from one sample's per-layer values (host side)."""
        return sample


def _label(key: str, labels: dict[str, str]) -> str:
    """`signal/features.6` -> `signal/03.features.6` (keys without a known layer stay as they are)."""
    prefix, _, name = key.partition("/")
    return f"{prefix}/{labels[name]}" if name in labels else key


def per_layer(sample: dict[str, float], prefix: str) -> list[tuple[str, float]]:
    """The sample's `prefix/<label>` entries, in label order (= forward order: labels start with the depth)."""
    start = len(prefix) + 1
    return sorted((k, v) for k, v in sample.items() if k.startswith(prefix + "/") and k[start:start + 1].isdigit())


def finite_or_nan(x: float) -> float:
    return x if math.isfinite(x) else math.nan
