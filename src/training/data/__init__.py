"""LightningDataModules: mnist5k and digits (offline, bundled in packages), mnist and cifar10
(torchvision, downloaded into `data/`), synthetic (random tensors for smoke tests).

Batches are `(images, labels, indices)`, indices in the source data set (`examples.py`).
"""

from src.training.data.base import OFFLINE_HINT, DataUnavailableError, ImageDataModule, TensorSplitDataModule, stratified_split
from src.training.data.bundled import DigitsDataModule, MNIST5kDataModule, SyntheticDataModule, pad_and_normalize
from src.training.data.downloaded import CIFAR10DataModule, MNISTDataModule, TorchvisionDataModule
from src.training.data.examples import IndexedSubset, TensorExamples

__all__ = [
    "OFFLINE_HINT", "CIFAR10DataModule", "DataUnavailableError", "DigitsDataModule", "ImageDataModule", "IndexedSubset",
    "MNIST5kDataModule", "MNISTDataModule", "SyntheticDataModule", "TensorExamples", "TensorSplitDataModule",
    "TorchvisionDataModule", "pad_and_normalize", "stratified_split",
]
