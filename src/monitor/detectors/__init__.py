"""The health detectors: one registry, in the order they are asked within a step (`KINDS`).

The order is also the timeline's priority: at a step where several detectors' states are active, the
run is in the first one's state (`timeline.py`). `plateau` comes last: it is the residual "not learning"
that holds only where no other detector explains why. A new detector is one class (`base.py`) and one
entry here, and its `on_<kind>` policy line in `conf/monitor/default.yaml`; the monitor's settings schema
(`settings.py`) is generated from this registry.
"""

from __future__ import annotations

from src.monitor.detectors.base import Detector, StepView, Sustained
from src.monitor.detectors.dead_units import DeadUnitsDetector
from src.monitor.detectors.divergence import DivergenceDetector
from src.monitor.detectors.exploding import ExplodingDetector
from src.monitor.detectors.nonfinite import NonfiniteDetector
from src.monitor.detectors.plateau import PlateauDetector
from src.monitor.detectors.stalled import StalledDetector
from src.monitor.detectors.unstable import UnstableDetector
from src.monitor.detectors.vanishing import VanishingDetector
from src.monitor.detectors.zeroed_weights import ZeroedWeightsDetector
from src.monitor.thresholds import Thresholds

DETECTORS: tuple[type[Detector], ...] = (
    NonfiniteDetector, ExplodingDetector, DivergenceDetector, ZeroedWeightsDetector, VanishingDetector,
    DeadUnitsDetector, StalledDetector, UnstableDetector, PlateauDetector,
)
KINDS: tuple[str, ...] = tuple(d.kind for d in DETECTORS)
if len(set(KINDS)) != len(KINDS):
    raise ValueError(f"two detectors share a kind: {KINDS}")


def default_detectors(thresholds: Thresholds) -> list[Detector]:
    """One of each kind, in `KINDS` order."""
    return [cls(thresholds) for cls in DETECTORS]


__all__ = ["DETECTORS", "KINDS", "Detector", "StepView", "Sustained", "default_detectors"]
