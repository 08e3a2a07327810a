"""TEMPLATE: a data set. Copy to `src/training/data/<name>.py` and `data.yaml` to `conf/data/<name>.yaml`,
rename `StripesDataModule`, and load your tensors. docs/extending.md ("A data set") is the contract.

Stripes: grayscale images of a sinusoidal grating in one of `num_classes` orientations, with noise.
Generated from the seed, so it is offline and the same settings give the same tensors. A data set
that fits in memory subclasses `TensorSplitDataModule` and implements two methods: `load_tensors`
(images (N, C, H, W) float, normalized; labels (N,) int64) and `describe` (what identifies the data
for the run's record, without reading the examples). The seeded stratified split, the loaders, the
examples' source indices (forensics, `skip_bad_batches`) and `leave_out` come with the base class.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from src.settings.signature import checked
from src.settings.types import NonNegativeFloat, PositiveFloat, PositiveInt
from src.training.data.base import TensorSplitDataModule
from src.training.data.description import DataDescription


class StripesDataModule(TensorSplitDataModule):
    """Gratings at `num_classes` evenly spaced orientations in [0, π), `period` pixels apart, plus noise."""

    name = "stripes"  # the `data` part of run names and the Dataset column of the MLflow UI

    @checked("data")
    def __init__(self, num_samples: PositiveInt = 600, period: PositiveFloat = 6.0, noise: NonNegativeFloat = 0.5,
                 **kwargs: Any) -> None:  # **kwargs: the base classes' settings (split, loaders, shape)
        super().__init__(**kwargs)
        self.num_samples, self.period, self.noise = num_samples, period, noise

    def load_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(self.seed)
        y = torch.arange(self.num_samples) % self.num_classes
        angle = y.double() * math.pi / self.num_classes
        phase = 2 * math.pi * torch.rand(self.num_samples, generator=gen, dtype=torch.float64)
        grid = torch.arange(self.image_size, dtype=torch.float64)
        rows, cols = grid.view(1, -1, 1), grid.view(1, 1, -1)
        along = cols * angle.cos().view(-1, 1, 1) + rows * angle.sin().view(-1, 1, 1)
        images = torch.sin(2 * math.pi * along / self.period + phase.view(-1, 1, 1))
        images = images + self.noise * torch.randn(images.shape, generator=gen, dtype=torch.float64)
        x = images.float().unsqueeze(1).expand(-1, self.in_channels, -1, -1).contiguous()
        return (x - x.mean()) / x.std(), y

    def describe(self) -> DataDescription:
        """Generated: identified by the generator's settings."""
        generator = {"seed": self.seed, "num_samples": self.num_samples, "period": self.period, "noise": self.noise,
                     "in_channels": self.in_channels, "num_classes": self.num_classes}
        return self._split_description(f"{type(self).__module__}.{type(self).__name__}", "code", generator)
