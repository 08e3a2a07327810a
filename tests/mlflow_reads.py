"""Reading what runs left in a test's MLflow store: one place for the searches the tests repeat."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def all_runs(mlflow_client: Any) -> list[Any]:
    """Every run of every experiment in the store."""
    ids = [e.experiment_id for e in mlflow_client.search_experiments()]
    return mlflow_client.search_runs(ids) if ids else []


def only_run(mlflow_client: Any) -> Any:
    """The store's one run (fails when there is not exactly one)."""
    runs = all_runs(mlflow_client)
    assert len(runs) == 1, f"expected one run, found {len(runs)}"
    return runs[0]


def run_events(mlflow_client: Any, run_id: str) -> list[dict[str, Any]]:
    """The run's `events.jsonl` artifact, one dict per event."""
    text = Path(mlflow_client.download_artifacts(run_id, "events.jsonl")).read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def metric_values(mlflow_client: Any, run_id: str) -> dict[str, list[tuple[int, float]]]:
    """Every logged (step, value) of every metric of the run."""
    keys = mlflow_client.get_run(run_id).data.metrics
    return {k: [(m.step, m.value) for m in mlflow_client.get_metric_history(run_id, k)] for k in keys}
