"""In-memory batches (`TensorExamples`): the same examples, in the same seeded order, as per-example loading,
each batch with its examples' source indices; shuffling per epoch, loader workers and distributed samplers."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, DistributedSampler, Subset, TensorDataset

from src.training.data import SyntheticDataModule, TensorExamples
from src.training.data.examples import keep_batch


def module(seed: int = 0, **kwargs) -> SyntheticDataModule:  # noqa: ANN003
    dm = SyntheticDataModule(num_samples=200, in_channels=1, image_size=8, batch_size=16, seed=seed, **kwargs)
    dm.setup("fit")
    return dm


def epoch(loader: DataLoader) -> list[tuple[torch.Tensor, ...]]:
    return [tuple(part.clone() for part in batch) for batch in loader]


def test_batches_carry_source_indices_and_equal_per_example_loading() -> None:
    dm = module()
    x_all, y_all = dm.load_tensors()
    assert isinstance(dm.train_set, TensorExamples)
    rows = dm.train_set.indices
    per_example = DataLoader(Subset(TensorDataset(x_all, y_all), rows), batch_size=16, shuffle=True,
                             generator=torch.Generator().manual_seed(0))  # the loader these batches replace
    batches = epoch(dm.train_dataloader())
    assert len(batches) == len(per_example) == 9  # 140 training examples: 8 full batches and one of 12
    for (x, y, idx), (x_ref, y_ref) in zip(batches, per_example, strict=True):
        assert torch.equal(x, x_ref) and torch.equal(y, y_ref)  # same examples, same seeded order
        assert idx.dtype == torch.int64
        assert torch.equal(x_all[idx], x) and torch.equal(y_all[idx], y)  # indices into the source tensors
    seen = torch.cat([idx for _, _, idx in batches]).tolist()
    assert sorted(seen) == sorted(rows)  # each training example once per epoch


def test_shuffling_is_seeded_and_changes_between_epochs() -> None:
    order = [torch.cat([b[2] for b in epoch(module(seed=0).train_dataloader())]).tolist() for _ in range(2)]
    assert order[0] == order[1]  # the same seed: the same order
    loader = module(seed=0).train_dataloader()
    first, second = (torch.cat([b[2] for b in epoch(loader)]).tolist() for _ in range(2))
    assert first == order[0] and second != first and sorted(second) == sorted(first)  # a new order each epoch
    other = module(seed=1)
    assert other.train_set.indices != module(seed=0).train_set.indices  # the seed also draws the split
    val = epoch(module().val_dataloader())
    assert torch.cat([b[2] for b in val]).tolist() == module().val_set.indices  # evaluation: in order


def test_loader_workers_give_the_same_batches() -> None:
    alone = epoch(module().train_dataloader())
    workers = epoch(module(num_workers=2).train_dataloader())
    assert len(alone) == len(workers)
    assert all(all(torch.equal(a, b) for a, b in zip(p, q, strict=True)) for p, q in zip(alone, workers, strict=True))


def test_distributed_samplers_split_the_examples_between_ranks() -> None:
    """What Lightning builds under DDP: the same dataset and collate function with a DistributedSampler."""
    ds = module().train_set
    per_rank = []
    for rank in range(2):
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=0)
        per_rank.append(torch.cat([idx for _, _, idx in DataLoader(ds, batch_size=16, sampler=sampler,
                                                                    collate_fn=keep_batch)]).tolist())
    assert len(per_rank[0]) == len(per_rank[1]) == 70
    assert not set(per_rank[0]) & set(per_rank[1]) and sorted(per_rank[0] + per_rank[1]) == sorted(ds.indices)


def test_single_examples_have_the_same_layout() -> None:
    ds = module().train_set
    x, y, i = ds[3]
    assert x.shape == (1, 8, 8) and y.shape == () and int(i) == ds.indices[3]
