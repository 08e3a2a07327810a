"""The MLflow logger the trainer uses: Lightning's, minus non-finite metric values.

A diverged run produces NaN/Inf losses (`train/loss`, `val/loss`); MLflow stores them, and its
UI then fails to draw the metric. They are dropped here, where Lightning has already turned
them into Python floats (no extra device synchronization); the gradient-health monitor records
that and where the run went non-finite (`grad/nonfinite`, `events.jsonl`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from pytorch_lightning.loggers import MLFlowLogger


class FiniteMLFlowLogger(MLFlowLogger):
    """`MLFlowLogger` that never sends a NaN or Inf metric value."""

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        finite = {k: v for k, v in metrics.items() if isinstance(v, str) or math.isfinite(float(v))}
        if finite:
            super().log_metrics(finite, step)
