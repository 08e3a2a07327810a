"""‖Δθ‖/‖θ‖ per layer for one optimizer step: weights copied before it, compared after it.

Copying the weights costs one pass over them and their size in memory, so the monitor asks for it
only every M steps (`rel_update_every_n_steps`). The update measured is everything that changed the
weights in that step: the optimizer's, decoupled weight decay and proximal L1's. Results stay on the
device until `read()`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from src import foreach

TINY = 1e-30  # floor before division, so a zero weight norm gives a finite (huge) ratio


class RelativeUpdateTracker:
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
