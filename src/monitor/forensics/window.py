"""The batches of the steps since the snapshot, and each step's learning rate, for a replay.

Batches are kept by reference — the tensors the loader made for that step, on the training device,
never copied — so the cost is the memory of about one flush window of batches (`every_n_steps` x one
batch; CIFAR-10 at batch 128: 1.5 MB a step) and nothing per step but a list append. Keeping the
batches themselves, not only their source indices, replays augmented data exactly as it was seen.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

Kept = tuple[Tensor, Tensor, Tensor | None]  # inputs, targets, source indices (None: the data has none)


@dataclass
class StepBatches:
    """Micro-batches and learning rates per optimizer step, from the snapshot's step on."""

    _batches: dict[int, list[Kept]] = field(default_factory=dict)
    _lrs: dict[int, list[float]] = field(default_factory=dict)

    def add(self, step: int, batch: Kept, lrs: list[float]) -> None:
        self._batches.setdefault(step, []).append(batch)
        self._lrs.setdefault(step, lrs)

    def drop_before(self, step: int) -> None:
        for old in [s for s in self._batches if s < step]:
            del self._batches[old], self._lrs[old]

    def clear(self) -> None:
        self._batches, self._lrs = {}, {}

    def steps(self) -> list[int]:
        return sorted(self._batches)

    def batches(self, step: int) -> list[Kept]:
        return self._batches.get(step, [])

    def lrs(self, step: int) -> list[float]:
        return self._lrs.get(step, [])

    def __len__(self) -> int:
        return len(self._batches)
