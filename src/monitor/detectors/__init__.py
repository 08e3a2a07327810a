"""The health detectors, one concern each, in the order they are asked within a step (`KINDS`)."""

from __future__ import annotations

from src.monitor.detectors.base import Detector, StepView, Sustained
from src.monitor.detectors.dead_units import DeadUnitsDetector
from src.monitor.detectors.divergence import DivergenceDetector
from src.monitor.detectors.exploding import ExplodingDetector
from src.monitor.detectors.nonfinite import NonfiniteDetector
from src.monitor.detectors.stalled import StalledDetector
from src.monitor.detectors.unstable import UnstableDetector
from src.monitor.detectors.vanishing import VanishingDetector
from src.monitor.events import KINDS
from src.monitor.thresholds import Thresholds

DETECTORS: tuple[type[Detector], ...] = (
    NonfiniteDetector, ExplodingDetector, DivergenceDetector, VanishingDetector, DeadUnitsDetector, StalledDetector,
    UnstableDetector,
)
assert tuple(d.kind for d in DETECTORS) == KINDS


def default_detectors(thresholds: Thresholds) -> list[Detector]:
    """One of each kind, in `KINDS` order."""
    return [cls(thresholds) for cls in DETECTORS]


__all__ = ["DETECTORS", "Detector", "StepView", "Sustained", "default_detectors"]
