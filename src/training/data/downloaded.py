"""torchvision's MNIST and CIFAR-10, downloaded into `data/`; offline, the error names what is missing."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from src.settings.signature import checked
from src.settings.types import OpenFraction, PositiveFloat
from src.training.data.base import OFFLINE_HINT, DataUnavailableError, ImageDataModule, stratified_split
from src.training.data.description import DataDescription, file_sha256
from src.training.data.examples import IndexedSubset, whole


class TorchvisionDataModule(ImageDataModule):
    """A torchvision dataset with an official train/test split; validation is a stratified part
    of the training set. Downloads into `data_dir` when allowed; offline, names what is missing."""

    @checked("data")
    def __init__(
        self, val_fraction: OpenFraction = 0.1, download: bool = True, download_timeout: PositiveFloat = 20.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.val_fraction, self.download, self.download_timeout = val_fraction, download, download_timeout

    source_url = ""  # where torchvision downloads it from

    def required_files(self) -> list[Path]:
        raise NotImplementedError

    def describe(self) -> DataDescription:
        """The downloaded files, identified by their sha256 (computed once per file, then remembered in the
        data folder); validation is a seeded part of the official training set, the test set is official."""
        files = {p.name: file_sha256(p, self.data_dir) for p in self.required_files()}
        drawn = {"seed": self.seed, "val_fraction": self.val_fraction}
        return self._description(self.source_url, "http", {"files_sha256": files},
                                 {"train": drawn, "val": drawn, "test": {"official": "test"}})

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
        train_idx, val_idx = stratified_split(labels, (self.val_fraction,), self.seed, self.data_dir)
        self.train_set = IndexedSubset(train_full, train_idx.tolist())
        self.val_set = IndexedSubset(train_eval, val_idx.tolist())
        self.test_set = whole(self.make(train=False, transform=self.eval_transform()))


class MNISTDataModule(TorchvisionDataModule):
    """torchvision's MNIST (60k train / 10k test), padded to 32x32 as LeNet-5 expects."""

    name = "mnist"
    fixed_shape = (1, 10, 32)
    source_url = "https://ossci-datasets.s3.amazonaws.com/mnist/"  # torchvision's first mirror

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
    source_url = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
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
