"""Reading what runs left in a test's MLflow store: one place for the searches the tests repeat."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf


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


def leaf_paths(node: Any, prefix: str = "") -> set[str]:
    """Dotted paths of a config's leaves (an empty list or mapping is a leaf), walked through OmegaConf."""
    if isinstance(node, DictConfig | ListConfig) and len(node):
        keys = node.keys() if isinstance(node, DictConfig) else range(len(node))
        return {path for key in keys for path in leaf_paths(node[key], f"{prefix}{key}.")}
    return {prefix.rstrip(".")}


def is_a_location(path: str) -> bool:
    """Where a run reads or writes (its folders): logged as tags `location.<key>`, not params."""
    return path.startswith("paths.") or path.endswith(".dirpath") or path in ("trainer.default_root_dir",
                                                                               "data.data_dir")


def assert_params_are_the_config(params: Mapping[str, str], config: DictConfig, limit: int = 6000) -> None:
    """An oracle independent of the flattening under test: every param is the value OmegaConf finds at its
    dotted path (as text, cut at MLflow's 6000-character limit), and every leaf of the config but the
    run's locations (folders) is a param."""
    settings = {path for path in leaf_paths(config) if not is_a_location(path)}
    assert set(params) == settings, set(params) ^ settings
    for key, value in params.items():
        assert value == str(OmegaConf.select(config, key))[:limit], key
