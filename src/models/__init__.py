"""Plain `nn.Module` builders, one per architecture. No Lightning here.

Each builder is imported when first used (`from src.models import resnet152` works as before): a LeNet-5
run does not load the VGG and ResNet modules, nor torchvision's model zoo through them.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {"LeNet5": "lenet", "lenet5": "lenet", "MLP": "mlp", "mlp": "mlp", "resnet152": "resnet", "vgg19": "vgg"}

__all__ = ["MLP", "LeNet5", "lenet5", "mlp", "resnet152", "vgg19"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'src.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"src.models.{_WHERE[name]}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
