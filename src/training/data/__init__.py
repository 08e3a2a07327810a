"""LightningDataModules: mnist5k and digits (offline, bundled in packages), mnist and cifar10
(torchvision, downloaded into `data/`), synthetic (random tensors for smoke tests)."""

from src.training.data.base import OFFLINE_HINT, DataUnavailableError, ImageDataModule, TensorSplitDataModule, stratified_split
from src.training.data.bundled import DigitsDataModule, MNIST5kDataModule, SyntheticDataModule, pad_and_normalize
from src.training.data.downloaded import CIFAR10DataModule, MNISTDataModule, TorchvisionDataModule

__all__ = [
    "OFFLINE_HINT", "CIFAR10DataModule", "DataUnavailableError", "DigitsDataModule", "ImageDataModule",
    "MNIST5kDataModule", "MNISTDataModule", "SyntheticDataModule", "TensorSplitDataModule", "TorchvisionDataModule",
    "pad_and_normalize", "stratified_split",
]
