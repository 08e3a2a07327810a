"""TEMPLATE: an instrument. Copy to `src/monitor/instruments/<name>.py`, rename `GradientZerosInstrument`
and its `name`, and change what it measures. docs/extending.md ("An instrument") is the contract and
lists where a new instrument is registered.

`grad_zero/<layer>`: the share of a layer's weight-gradient entries that are exactly zero on a due
step (units: a fraction in [0, 1]). Whole rows at zero mean units that pass no gradient (dead ReLUs,
pruned filters); a share rising over training is the gradient-flow side of sparsification. Cost: one
comparison and one mean per tracked layer on the due steps, on the device; nothing on other steps.

It reads the data gradient: `after_backward` runs before the regularizers' penalty gradient is added
to `p.grad` (`src/monitor/instruments/base.py` says where each hook runs).
"""

from __future__ import annotations

from typing import Any

from src.monitor.instruments.base import Instrument


class GradientZerosInstrument(Instrument):
    name = "grad_zero"  # the metric prefix: grad_zero/<layer label>

    def __init__(self, every_n_steps: int = 0) -> None:  # 0 = never (off by default, as every instrument)
        super().__init__(every_n_steps)

    def after_backward(self, step: int, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        if not self.due(step):
            return
        keys, values = [], []
        for name, module in self.layer_modules.items():
            weight = getattr(module, "weight", None)
            if weight is not None and weight.grad is not None:
                keys.append(f"{self.name}/{name}")
                values.append((weight.grad == 0).float().mean())
        self.store(step, keys, values)  # one small device tensor; read (one host copy) at the next flush
