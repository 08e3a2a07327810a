"""Datasets whose batches say which examples they hold: every batch is `(images, labels, indices)`.

`indices` (int64, one per example) are the examples' positions in the *source* data set, the one
the split was drawn from: the rows of a bundled set's tensors (`TensorSplitDataModule.load_tensors`),
or the indices of torchvision's own train or test set. They are the same in every epoch, order and
process (DDP ranks, loader workers), so a step can be replayed and its examples looked up
(`images[indices]` of the source data). Training code reads `x, y = batch[:2]`.

Two kinds:
- `TensorExamples`: examples that live in memory as tensors (mnist5k, digits, synthetic). The
  DataLoader hands it a whole batch of positions at once (`__getitems__`), so a batch is three
  tensor indexing ops instead of one `__getitem__` per example and a `default_collate` stack;
  `keep_batch` is its collate function. The sampler is the DataLoader's own (random with the seeded
  generator for training, sequential otherwise), so shuffling, `num_workers` and the
  `DistributedSampler` that Lightning puts in its place under DDP work as with any map dataset.
- `IndexedSubset`: a `Subset` of a per-example dataset (torchvision's, with its transforms) whose
  examples carry their source index; `default_collate` stacks them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset

Example = tuple[Tensor, Tensor, Tensor]  # image (C, H, W), label (), source index () int64
Batch = tuple[Tensor, Tensor, Tensor]  # images (B, C, H, W), labels (B,), source indices (B,) int64


class TensorExamples(Dataset):
    """The examples `rows` of in-memory `images` (N, C, H, W) and `labels` (N,), in that order.

    `indices` is the list of source rows, as `Subset.indices` (position i holds row `indices[i]`).
    """

    def __init__(self, images: Tensor, labels: Tensor, rows: Sequence[int] | Tensor) -> None:
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels = images, labels
        self.rows = torch.as_tensor(rows, dtype=torch.int64)
        self.indices: list[int] = self.rows.tolist()

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, position: int) -> Example:
        row = self.rows[position]
        return self.images[row], self.labels[row], row

    def __getitems__(self, positions: Sequence[int]) -> Batch:
        """A whole batch in one go (the DataLoader calls this with a batch of positions)."""
        rows = self.rows[torch.as_tensor(positions, dtype=torch.int64)]
        return self.images[rows], self.labels[rows], rows


def keep_batch(batch: Batch) -> Batch:
    """The collate function of `TensorExamples`: its batches are made already (a module-level function,
    so loader workers can pickle it)."""
    return batch


class IndexedSubset(Subset):
    """`Subset(dataset, indices)` whose examples are `(image, label, source index)`."""

    def __getitem__(self, position: int) -> Example:  # type: ignore[override]
        index = self.indices[position]
        image, label = self.dataset[index][:2]
        return image, torch.as_tensor(label, dtype=torch.int64), torch.tensor(index, dtype=torch.int64)

    def __getitems__(self, positions: list[int]) -> list[Example]:  # type: ignore[override]
        return [self[p] for p in positions]


def whole(dataset: Dataset) -> IndexedSubset:
    """Every example of `dataset`, with its index."""
    return IndexedSubset(dataset, range(len(dataset)))  # type: ignore[arg-type]
