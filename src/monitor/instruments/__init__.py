"""The monitor's instruments, one class per quantity with its own schedule (`base.py`), driven as one list.

`INSTRUMENTS` is the registry: name -> how to build it from the monitor's settings. A new instrument is
one class and one entry here (and its settings in the monitor's signature and `conf/monitor/default.yaml`);
`Instruments.schedules` tells the detectors' coverage each one's `every_n_steps` by that name.

`Instruments` forwards the monitor's hooks to each instrument, gathers their samples at a flush
(`read`: one host copy per sampled step), and keeps a bounded host history of the per-layer signal
and dead fractions for the end-of-run figure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from src.monitor.instruments.base import Instrument, Sample, per_layer
from src.monitor.instruments.sharpness import SharpnessInstrument
from src.monitor.instruments.signal import SignalInstrument
from src.monitor.instruments.units import UnitHealthInstrument

MAX_HISTORY = 2048  # samples kept for the plots; beyond it every other one is dropped (evenly spaced)


class Instruments:
    def __init__(self, instruments: list[Instrument]) -> None:
        self.schedules = {i.name: i.every_n_steps for i in instruments}  # by name; 0 = off
        self.items = [i for i in instruments if i.every_n_steps > 0]
        self.history: list[Sample] = []

    def bind(self, net: Any, layer_names: list[str]) -> None:
        for item in self.items:
            item.bind(net, layer_names)

    def before_forward(self, step: int, trainer: Any, pl_module: Any, batch: Any) -> None:
        for item in self.items:
            item.before_forward(step, trainer, pl_module, batch)

    def after_backward(self, step: int, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        for item in self.items:
            item.after_backward(step, trainer, pl_module, optimizer)

    def after_update(self, step: int, trainer: Any, pl_module: Any) -> None:
        for item in self.items:
            item.after_update(step, trainer, pl_module)

    def read_host_at(self, step: int) -> bool:
        """Whether an instrument due at `step` reads the host (the sharpness probe): the monitor flushes there,
        so every host read of a run stays at a flush."""
        return any(item.reads_host and item.due(step) for item in self.items)

    def detach(self) -> None:
        for item in self.items:
            item.detach()

    def read(self, labels: dict[str, str]) -> dict[int, dict[str, float]]:
        """{step: {key: value}} of every instrument's samples since the last read (host floats)."""
        merged: dict[int, dict[str, float]] = {}
        for item in self.items:
            for step, values in item.read(labels):
                merged.setdefault(step, {}).update(values)
        for step in sorted(merged):
            self.history.append((step, merged[step]))
        if len(self.history) > MAX_HISTORY:
            self.history = self.history[::2]
        return merged

    def layer_history(self, prefix: str, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(steps, (n, L) values) of `prefix/<label>` over the kept samples that have any (NaN where missing)."""
        rows = [(s, v) for s, v in self.history if per_layer(v, prefix)]
        steps = np.array([s for s, _ in rows], dtype=np.int64)
        values = np.array([[v.get(f"{prefix}/{label}", np.nan) for label in labels] for _, v in rows],
                          dtype=np.float64).reshape(len(rows), len(labels))
        return steps, values


INSTRUMENTS: dict[str, Callable[[Mapping[str, Any]], Instrument]] = {
    "signal": lambda s: SignalInstrument(s.get("signal_every_n_steps", 0)),
    "units": lambda s: UnitHealthInstrument(s.get("units_every_n_steps", 0), s.get("saturation_limit", 0.01)),
    "sharpness": lambda s: SharpnessInstrument(
        s.get("sharpness_every_n_steps", 0), s.get("sharpness_iterations", 60), s.get("sharpness_batch_size", 32),
        tolerance=s.get("sharpness_tolerance", 0.01)),
}


def build_instruments(**settings: Any) -> Instruments:
    """Every registered instrument, built from the monitor's settings (`<name>_every_n_steps` = 0: off)."""
    return Instruments([make(settings) for make in INSTRUMENTS.values()])


__all__ = ["INSTRUMENTS", "Instrument", "Instruments", "SharpnessInstrument", "SignalInstrument",
           "UnitHealthInstrument", "build_instruments"]
