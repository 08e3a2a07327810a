"""What the sweep dashboard draws, read from the runs' MLflow records (`src/report/dashboard.py` draws it).

- The health timeline of a run: its artifact `health/timeline.json`, a list of
  `{state, start_step, end_step}` (state = `healthy` or an event kind; steps are optimizer steps,
  both ends included). A run without it (an older run, the monitor off) gets one segment coloured by
  its `health.verdict` tag over the steps it logged `train/loss`, marked as a verdict only.
- Per-layer values: the last logged value of each `<prefix><NN>.<layer>` metric (`grad_rel/`: the
  data gradient's ‖g‖/‖θ‖; `signal/`: the back-propagated ‖∂L/∂z‖), in forward order (by `NN`).
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from src.report.records import RunRecord, metric_history

TIMELINE_ARTIFACT = "health/timeline.json"
LAYER_KEY = re.compile(r"^(\d+)\.(.+)$")  # `03.features.10` after the prefix; `signal/first_last_ratio` is not one
LAYER_PREFIXES = {"grad_rel/": "data gradient ‖g‖/‖θ‖", "signal/": "back-propagated signal ‖∂L/∂z‖"}


@dataclass(frozen=True)
class Segment:
    """A stretch of optimizer steps spent in one state, both ends included."""

    state: str
    start_step: int
    end_step: int
    from_verdict: bool = False  # no timeline: the run's verdict drawn over the steps it logged


def last_step(mlflow_client: Any, record: RunRecord) -> int:
    """The last optimizer step at which the run logged `train/loss`, 0 when it logged none."""
    history = metric_history(mlflow_client, record.run_id, "train/loss") if "train/loss" in record.metrics else []
    return max((step for step, _ in history), default=0)


def read_timeline(mlflow_client: Any, run_id: str) -> list[dict] | None:
    """The run's `health/timeline.json`, or None when it has none."""
    folder = TIMELINE_ARTIFACT.rsplit("/", 1)[0]
    if not any(item.path == TIMELINE_ARTIFACT for item in mlflow_client.list_artifacts(run_id, folder)):
        return None
    from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR

    shown = os.environ.get(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.name)
    os.environ[MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.name] = "false"  # one bar per run would flood the sweep's end
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = mlflow_client.download_artifacts(run_id, TIMELINE_ARTIFACT, tmp)
            return json.loads(Path(path).read_text())
    finally:
        if shown is None:
            os.environ.pop(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.name, None)
        else:
            os.environ[MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.name] = shown


def segments(mlflow_client: Any, record: RunRecord) -> list[Segment]:
    """The run's states over its steps: its timeline, else its verdict, else nothing."""
    timeline = read_timeline(mlflow_client, record.run_id)
    if timeline:
        return [Segment(str(s["state"]), int(s["start_step"]), int(s["end_step"])) for s in timeline]
    verdict = record.tags.get("health.verdict")
    return [Segment(verdict, 0, last_step(mlflow_client, record), from_verdict=True)] if verdict else []


def layer_keys(records: list[RunRecord], prefix: str) -> list[str]:
    """Per-layer metric keys under `prefix` that any of the runs logged, in forward order."""
    found = {k for r in records for k in r.metrics if k.startswith(prefix) and LAYER_KEY.match(k[len(prefix):])}
    return sorted(found, key=lambda k: (int(LAYER_KEY.match(k[len(prefix):]).group(1)), k))


def layer_label(key: str) -> str:
    """`grad_rel/03.features.10` -> `features.10`."""
    match = LAYER_KEY.match(key.split("/", 1)[-1])
    return match.group(2) if match else key


def layer_values(record: RunRecord, keys: list[str]) -> list[float | None]:
    """The run's last value of each key; None where it did not log one or it is not a positive number."""
    values = [record.metrics.get(k) for k in keys]
    return [v if v is not None and math.isfinite(v) and v > 0 else None for v in values]


def geometric_profile(rows_values: list[list[float | None]]) -> tuple[list, list, list]:
    """Per layer over seeds: (geometric mean, min, max); None where no seed has a value."""
    mean, low, high = [], [], []
    for column in zip(*rows_values, strict=True):
        present = [v for v in column if v is not None]
        if not present:
            mean.append(None)
            low.append(None)
            high.append(None)
            continue
        mean.append(10 ** (sum(math.log10(v) for v in present) / len(present)))
        low.append(min(present))
        high.append(max(present))
    return mean, low, high
