"""Training examples left out by source index: how a resume with `skip_bad_batches=true` goes on past
the examples a forensics report named (`src/lifecycle/skip_resume.py`).

A filter on the *dataset*, not on the sampler: Lightning replaces the training sampler with a
`DistributedSampler` under DDP, and a smaller dataset is split between the ranks like any other.
Indices are source indices (`examples.py`), the same in every epoch, rank and process. The epochs
after the skip are one example (or batch) shorter and shuffled accordingly: the run is not the run
it would have been, only the closest one without those examples.
"""

from __future__ import annotations

from collections.abc import Collection

from torch.utils.data import Dataset, Subset

from src.training.data.examples import TensorExamples


def without(dataset: Dataset, left_out: Collection[int]) -> Dataset:
    """`dataset` minus the examples whose source index is in `left_out` (the same object when none is)."""
    if not left_out:
        return dataset
    skip = set(left_out)
    if isinstance(dataset, TensorExamples):
        return TensorExamples(dataset.images, dataset.labels, [r for r in dataset.indices if r not in skip])
    if isinstance(dataset, Subset):
        return type(dataset)(dataset.dataset, [i for i in dataset.indices if i not in skip])
    raise TypeError(f"cannot leave examples out of a {type(dataset).__name__}: it has no source indices")
