"""Shared data-module plumbing: seeded stratified splits, loaders, and the error for missing data.

Every module yields 32x32 (or `image_size`) float images, normalized, with seeded stratified
train/val/test splits, and checks that the shape settings it is given match the data it has,
so the `model` config (which reads them by interpolation) always fits. Batches are
`(images, labels, indices)`: `indices` are the examples' positions in the source data set
(`src/training/data/examples.py`).
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from src.settings import ConfigError, UserError
from src.settings.signature import checked
from src.settings.types import ClassCount, Fraction, NonNegativeInt, PositiveInt, Seed, WritableDir
from src.training.data.description import DataDescription, Split
from src.training.data.examples import TensorExamples, keep_batch
from src.training.data.skip import without
from src.training.data.worker_signals import SignalSafeLoader, worker_init, worker_start_method

OFFLINE_HINT = "`data=mnist5k` (or `data=digits`) works offline"


class DataUnavailableError(UserError, RuntimeError):
    """A dataset's files are missing and could not be downloaded."""


def stratified_split(
    labels: np.ndarray, fractions: tuple[float, ...], seed: int, cache_dir: Path | None = None
) -> list[np.ndarray]:
    """Indices split by `fractions` (the rest goes first), each part keeping class proportions.

    The rest (the training part) is in ascending order; its loader shuffles it. The other parts (validation,
    test) keep the split's seeded shuffled order, because their loaders do not shuffle: in a source sorted by
    class (mnist5k is), `limit_val_batches`/`limit_test_batches` would otherwise see one class only.

    With `cache_dir`, the parts are kept in `<cache_dir>/splits/` under a key of the labels, fractions, seed
    and scikit-learn's version, so later runs skip scikit-learn's import (~0.2-0.4 s) and the split.
    """
    if cache_dir is not None:
        return _cached_split(labels, fractions, seed, cache_dir)
    from sklearn.model_selection import train_test_split  # imported only where a split is computed

    idx = np.arange(len(labels))
    parts: list[np.ndarray] = []
    rest, rest_labels = idx, labels
    for frac in fractions:
        if frac <= 0:
            parts.append(np.array([], dtype=int))
            continue
        size = max(1, int(round(frac * len(labels))))
        counts = np.unique(rest_labels, return_counts=True)[1]
        stratify = rest_labels if size >= len(counts) and counts.min() >= 2 else None  # too few to stratify
        rest, part = train_test_split(rest, test_size=size, stratify=stratify, random_state=seed)
        rest_labels = labels[rest]
        parts.append(np.asarray(part))
    return [np.sort(rest), *parts]


def _cached_split(labels: np.ndarray, fractions: tuple[float, ...], seed: int, cache_dir: Path) -> list[np.ndarray]:
    import hashlib
    from importlib.metadata import version

    key = hashlib.sha256(np.ascontiguousarray(labels).tobytes())
    key.update(repr((labels.dtype.str, tuple(fractions), seed, version("scikit-learn"))).encode())
    path = cache_dir / "splits" / f"{key.hexdigest()[:32]}.npz"
    if path.exists():
        with np.load(path) as saved:
            return [saved[f"part{i}"] for i in range(len(fractions) + 1)]
    parts = stratified_split(labels, fractions, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **{f"part{i}": part for i, part in enumerate(parts)})
    tmp.replace(path)  # atomic: parallel sweep jobs never read a half-written file
    return parts


class ImageDataModule(pl.LightningDataModule):
    """Shared loader plumbing; subclasses fill `self.train_set`, `self.val_set`, `self.test_set`."""

    name = "data"
    fixed_shape: tuple[int, int, int] | None = None  # (in_channels, num_classes, image_size)

    @checked("data")
    def __init__(
        self,
        data_dir: WritableDir = "data",
        batch_size: PositiveInt = 64,
        eval_batch_size: PositiveInt | None = None,
        num_workers: NonNegativeInt = 0,
        seed: Seed = 0,
        in_channels: PositiveInt = 1,
        num_classes: ClassCount = 10,
        image_size: PositiveInt = 32,
    ) -> None:
        super().__init__()
        if self.fixed_shape is not None and (in_channels, num_classes, image_size) != self.fixed_shape:
            c, k, s = self.fixed_shape
            raise ConfigError(
                f"data={self.name} has in_channels={c}, num_classes={k}, image_size={s}; "
                f"got {in_channels}, {num_classes}, {image_size}"
            )
        self.data_dir = Path(data_dir)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.in_channels, self.num_classes, self.image_size = in_channels, num_classes, image_size
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None
        self.left_out: frozenset[int] = frozenset()  # training examples' source indices never loaded (`skip.py`)

    def leave_out(self, indices: Collection[int]) -> None:
        """Never train on the examples with these source indices (validation and test keep theirs)."""
        self.left_out = frozenset(int(i) for i in indices)

    def _loader(self, ds: Dataset | None, train: bool) -> DataLoader:
        """Training: shuffled by a generator seeded with `seed` (the same order in every run of a seed;
        under DDP Lightning swaps in a `DistributedSampler`). In-memory examples come a batch at a time."""
        assert ds is not None, "setup() has not run"
        gen = torch.Generator().manual_seed(self.seed)
        return SignalSafeLoader(  # workers ignore stop signals: the run stops at its step boundary
            ds,
            batch_size=self.batch_size if train else self.eval_batch_size,
            shuffle=train,
            generator=gen if train else None,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            worker_init_fn=worker_init if self.num_workers > 0 else None,
            multiprocessing_context=worker_start_method(self.num_workers),  # fork, also inside a joblib worker
            collate_fn=keep_batch if isinstance(ds, TensorExamples) else None,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(without(self.train_set, self.left_out) if self.train_set is not None else None, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, train=False)

    def split_sizes(self) -> dict[str, int]:
        """Examples per split (after `setup()`)."""
        sets = {"train": self.train_set, "val": self.val_set, "test": self.test_set}
        if any(ds is None for ds in sets.values()):
            raise RuntimeError(f"data={self.name}: describe() needs setup() first")
        return {split: len(ds) for split, ds in sets.items()}

    def describe(self) -> DataDescription:
        """What identifies this data and its splits, for the run's record (after `setup()`); never reads
        the examples. Each data set says it next to its loader."""
        raise NotImplementedError

    def _description(self, source: str, source_kind: str, identity: dict, selections: dict) -> DataDescription:
        sizes = self.split_sizes()
        return DataDescription(
            name=self.name, source=source, source_kind=source_kind,
            identity={**identity, "image_size": self.image_size},
            splits={split: Split(size, selections.get(split, {})) for split, size in sizes.items()},
            image_shape=(self.in_channels, self.image_size, self.image_size), num_classes=self.num_classes,
        )


class TensorSplitDataModule(ImageDataModule):
    """Data that fits in memory as one tensor pair, split into train/val/test by stratified sampling."""

    @checked("data")
    def __init__(self, val_fraction: Fraction = 0.1, test_fraction: Fraction = 0.2, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # the config checks val_fraction + test_fraction < 1 (src/config/checks.py)
        self.val_fraction, self.test_fraction = val_fraction, test_fraction

    def load_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (N, C, H, W) float, normalized; labels (N,) int64."""
        raise NotImplementedError

    def _split_description(self, source: str, source_kind: str, identity: dict) -> DataDescription:
        """All three splits are drawn from the same tensors by the seeded stratified split."""
        rule = {"seed": self.seed, "val_fraction": self.val_fraction, "test_fraction": self.test_fraction}
        return self._description(source, source_kind, identity, dict.fromkeys(("train", "val", "test"), rule))

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        x, y = self.load_tensors()
        train, val, test = stratified_split(y.numpy(), (self.val_fraction, self.test_fraction), self.seed,
                                            self.data_dir)
        self.train_set, self.val_set, self.test_set = (TensorExamples(x, y, rows) for rows in (train, val, test))
