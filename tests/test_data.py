"""Data modules: the bundled sets offline, and torchvision's MNIST / CIFAR-10 loaders on tiny files
written here in torchvision's own on-disk formats (idx files; pickled CIFAR batches). No network."""

from __future__ import annotations

import hashlib
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.datasets import CIFAR10, MNIST

from src.training.data import (
    CIFAR10DataModule,
    DataUnavailableError,
    DigitsDataModule,
    MNIST5kDataModule,
    MNISTDataModule,
    SyntheticDataModule,
)


def write_idx(path: Path, array: np.ndarray) -> None:
    """An idx file as in LeCun's MNIST distribution: magic (0x08 = ubyte, ndim), sizes, data."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_tiny_mnist(root: Path, n_train: int = 60, n_test: int = 20) -> None:
    rng = np.random.default_rng(0)
    raw = root / "MNIST" / "raw"
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)


def write_tiny_cifar(root: Path, per_batch: int = 20) -> dict[str, str]:
    """CIFAR-10's python pickles; returns {file name: md5} so the test can tell torchvision."""
    rng = np.random.default_rng(0)
    base = root / CIFAR10.base_folder
    base.mkdir(parents=True)
    names = [n for n, _ in CIFAR10.train_list + CIFAR10.test_list]
    for name in names:
        batch = {"data": rng.integers(0, 256, (per_batch, 3072)).astype(np.uint8),
                 "labels": [i % 10 for i in range(per_batch)]}
        (base / name).write_bytes(pickle.dumps(batch))
    meta = {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]}
    (base / CIFAR10.meta["filename"]).write_bytes(pickle.dumps(meta))
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in base.iterdir()}


def test_mnist_loader_on_idx_files(tmp_path: Path) -> None:
    write_tiny_mnist(tmp_path)
    dm = MNISTDataModule(data_dir=str(tmp_path), download=False, batch_size=8, val_fraction=0.2)
    dm.prepare_data()
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (48, 12, 20)
    val_labels = [int(dm.val_set[i][1]) for i in range(len(dm.val_set))]
    assert sorted(set(val_labels)) == list(range(10))  # stratified: every class in validation
    x, y, idx = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 1, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.all(x[:, :, :2, :] == x.min())  # zero-padded border, normalized like the rest
    source = dm.train_set.dataset  # torchvision's training set: idx are its indices, not positions in the split
    assert set(idx.tolist()) <= set(dm.train_set.indices)
    assert all(torch.equal(source[i][0], x[k]) and source[i][1] == y[k] for k, i in enumerate(idx.tolist()))
    _, _, test_idx = next(iter(dm.test_dataloader()))
    assert test_idx.tolist() == list(range(len(test_idx)))  # the test set is torchvision's, in its order


def test_cifar10_loader_on_pickled_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    md5 = write_tiny_cifar(tmp_path)
    monkeypatch.setattr(CIFAR10, "train_list", [[n, md5[n]] for n, _ in CIFAR10.train_list])
    monkeypatch.setattr(CIFAR10, "test_list", [[n, md5[n]] for n, _ in CIFAR10.test_list])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": md5[CIFAR10.meta["filename"]]})
    dm = CIFAR10DataModule(data_dir=str(tmp_path), download=False, batch_size=16, num_workers=0,
                           in_channels=3, val_fraction=0.1)
    dm.prepare_data()
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (90, 10, 20)
    x, y, idx = next(iter(dm.train_dataloader()))
    assert x.shape == (16, 3, 32, 32) and y.max() < 10 and idx.shape == (16,)
    # augmentation (crop + flip) on the training view only
    i = dm.train_set.indices[0]
    reads = [dm.train_set.dataset[i][0] for _ in range(6)]
    assert any(not torch.equal(reads[0], r) for r in reads[1:])
    assert torch.equal(dm.val_set.dataset[i][0], dm.val_set.dataset[i][0])


@pytest.mark.parametrize("module, folder", [(MNISTDataModule, "MNIST/raw"), (CIFAR10DataModule, "cifar-10-batches-py")])
def test_offline_error_names_file_folder_and_alternative(tmp_path: Path, module, folder: str) -> None:  # noqa: ANN001
    kwargs = {"in_channels": 3} if module is CIFAR10DataModule else {}
    dm = module(data_dir=str(tmp_path), download=False, **kwargs)
    with pytest.raises(DataUnavailableError) as err:
        dm.prepare_data()
    message = str(err.value)
    assert str(tmp_path / folder) in message
    assert "data=mnist5k" in message and "offline" in message


def test_failed_download_gives_the_offline_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(MNIST, "mirrors", ["http://127.0.0.1:9/"])  # nothing listens there: refused at once
    dm = MNISTDataModule(data_dir=str(tmp_path), download=True, download_timeout=5)
    with pytest.raises(DataUnavailableError, match="download failed") as err:
        dm.prepare_data()
    assert "train-images-idx3-ubyte" in str(err.value) and "data=mnist5k" in str(err.value)


def test_mnist5k_is_real_balanced_and_cached(data_dir: Path) -> None:
    dm = MNIST5kDataModule(data_dir=str(data_dir), seed=0)
    dm.setup("fit")
    assert (data_dir / "mnist5k.pt").exists()
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (3500, 500, 1000)
    test_labels = torch.stack([dm.test_set[i][1] for i in range(len(dm.test_set))])
    assert torch.bincount(test_labels).tolist() == [100] * 10  # 500 per class, stratified 20%
    x = torch.stack([dm.train_set[i][0] for i in range(256)])
    assert x.shape == (256, 1, 32, 32)
    assert abs(x.mean().item()) < 0.2 and 0.8 < x.std().item() < 1.2  # normalized
    again = MNIST5kDataModule(data_dir=str(data_dir), seed=0)
    again.setup("fit")
    assert again.train_set.indices == dm.train_set.indices  # seeded split


def test_digits_and_synthetic_shapes() -> None:
    digits = DigitsDataModule(batch_size=16)
    digits.setup()
    assert next(iter(digits.train_dataloader()))[0].shape == (16, 1, 32, 32)
    syn = SyntheticDataModule(num_samples=100, in_channels=3, num_classes=4, image_size=16, batch_size=10)
    syn.setup()
    x, y, idx = next(iter(syn.train_dataloader()))
    assert x.shape == (10, 3, 16, 16) and int(y.max()) < 4 and idx.dtype == torch.int64


def test_fixed_datasets_refuse_other_shapes() -> None:
    with pytest.raises(ValueError, match="data=mnist5k has in_channels=1"):
        MNIST5kDataModule(in_channels=3)


def test_a_limited_evaluation_sees_every_class() -> None:
    """mnist5k's source is sorted by digit; the first validation and test batches still hold every class."""
    from src.training.data import MNIST5kDataModule

    dm = MNIST5kDataModule(batch_size=64)
    dm.setup("fit")
    dm.setup("test")
    for loader in (dm.val_dataloader(), dm.test_dataloader()):
        labels = next(iter(loader))[1]
        assert set(labels.tolist()) == set(range(10)), labels.tolist()
