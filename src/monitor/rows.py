"""What a flush sends to MLflow: metric rows at the logging cadence, from the per-step statistics.

MLflow gets the statistics on the steps where Lightning logs `train/loss` — the monitor's 0-based
step `s` with `(s + 1) % trainer.log_every_n_steps == 0` — and on the run's last step (or the step it
stopped at); every step is in the `health/` record instead (`src/monitor/record.py`). Events keep
their exact step. Non-finite values are left out (the MLflow UI cannot draw them); `grad/nonfinite`
and `events.jsonl` say where they were.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from src.monitor.stats import Summary

Row = tuple[str, float, int]


def cadence_indices(steps: np.ndarray, log_every: int, include_last: bool) -> list[int]:
    """Rows of a block that MLflow gets: the logging cadence, and the block's last row when asked."""
    picked = [i for i, s in enumerate(steps.tolist()) if (s + 1) % log_every == 0]
    if include_last and len(steps) and (not picked or picked[-1] != len(steps) - 1):
        picked.append(len(steps) - 1)
    return picked


def statistic_rows(summary: Summary, labels: list[str], indices: Iterable[int], skipped_before: int,
                   with_scaler: bool) -> list[Row]:
    """`grad/*`, `grad_penalty/*`, per-layer keys and `amp/skipped_steps` for the chosen rows.

    `skipped_before`: skipped steps counted before this block (for the running `amp/skipped_steps`).
    """
    rows: list[Row] = []
    skipped_running = skipped_before + np.cumsum(summary.skipped.astype(int))
    has_penalty = summary.layer_penalty is not None
    for i in indices:
        step = int(summary.steps[i])
        rows += [("grad/global_norm", summary.global_norm[i], step), ("grad/global_rms", summary.global_rms[i], step),
                 ("grad/global_rel", summary.global_rel[i], step), ("grad/nonfinite", summary.nonfinite[i], step),
                 ("grad/first_last_ratio", summary.first_last_ratio[i], step),
                 ("grad/depth_slope", summary.depth_slope[i], step)]
        if has_penalty:
            rows.append(("grad_penalty/global_norm", summary.penalty_norm[i], step))
        if with_scaler:
            rows.append(("amp/skipped_steps", float(skipped_running[i]), step))
        for j, label in enumerate(labels):
            rows += [(f"grad_norm/{label}", summary.layer_norm[i, j], step),
                     (f"grad_rms/{label}", summary.layer_rms[i, j], step),
                     (f"grad_rel/{label}", summary.layer_rel[i, j], step),
                     (f"weight_norm/{label}", summary.layer_weight[i, j], step)]
            if has_penalty:
                rows.append((f"grad_penalty/{label}", summary.layer_penalty[i, j], step))
    return [(k, float(v), s) for k, v, s in rows if math.isfinite(float(v))]
