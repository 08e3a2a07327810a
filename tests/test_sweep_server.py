"""End to end over HTTP: a real `mlflow server` on 127.0.0.1, a sweep logged to it, runs read back
through the REST API. One job fails (an exception injected at step 1): the other still runs and the
parent run records the failure."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from src.tracking.store import copy_store
from tests.servers import mlflow_server as start_mlflow_server
from tests.sweeps import run_sweep, tail


@pytest.fixture
def mlflow_server(tmp_path: Path, _template_store: Path) -> Iterator[str]:
    """`mlflow server` on a free port of 127.0.0.1 (sqlite backend, proxied artifacts); stopped afterwards."""
    store = tmp_path / "server"
    store.mkdir()
    copy_store(_template_store, store / "mlflow.db")  # already migrated: the server starts in seconds
    with start_mlflow_server(f"sqlite:///{store / 'mlflow.db'}", store / "artifacts", tmp_path / "server.log") as url:
        yield url


def rest(url: str, endpoint: str, method: str = "post", **body: object) -> dict:
    """One call of MLflow's REST API (POST with a JSON body, or GET with query parameters)."""
    if method == "get":
        response = requests.get(f"{url}/api/2.0/mlflow/{endpoint}", params=body, timeout=30)
    else:
        response = requests.post(f"{url}/api/2.0/mlflow/{endpoint}", json=body, timeout=30)
    response.raise_for_status()
    return response.json()


@pytest.mark.slow  # an mlflow server, then a sweep over HTTP
def test_sweep_against_an_mlflow_server_over_http(tmp_path: Path, mlflow_server: str) -> None:
    proc = run_sweep(tmp_path, mlflow_server, "optim=adam", "+callbacks.boom._target_=tests.helpers.RaiseAtStep",
                     "+callbacks.boom.step=1000,1")  # job 1 raises at step 1; job 0's step is past the end
    assert proc.returncode != 0, "Hydra reports the failed job at the end of the sweep"
    assert "injected failure at step 1" in proc.stdout + proc.stderr, tail(proc)

    experiment = rest(mlflow_server, "experiments/get-by-name", "get", experiment_name="gradreg")["experiment"]
    runs = rest(mlflow_server, "runs/search", experiment_ids=[experiment["experiment_id"]], max_results=100)["runs"]
    tags = [{t["key"]: t["value"] for t in run["data"].get("tags", [])} for run in runs]
    parents = [(run, t) for run, t in zip(runs, tags, strict=True) if t.get("sweep_role") == "parent"]
    assert len(parents) == 1
    parent, parent_tags = parents[0]
    children = [(run, t) for run, t in zip(runs, tags, strict=True) if t.get("sweep_role") == "job"]
    assert len(children) == 2
    assert all(t["mlflow.parentRunId"] == parent["info"]["run_id"] for _, t in children)
    assert all(t["sweep_id"] == parent_tags["sweep_id"] for _, t in children)

    by_outcome = {t["outcome"]: run for run, t in children}
    assert set(by_outcome) == {"completed", "failed"}
    assert by_outcome["completed"]["info"]["status"] == "FINISHED"
    metrics = {m["key"] for m in by_outcome["completed"]["data"]["metrics"]}
    assert {"train/loss", "test/acc"} <= metrics
    assert by_outcome["failed"]["info"]["status"] == "FAILED"

    assert parent["info"]["status"] == "FAILED"  # closed at exit although Hydra skipped on_multirun_end
    assert parent_tags["sweep_outcomes"] == "completed=1 failed=1"
    assert parent_tags["sweep_all_completed"] == "false"

    completed_id = by_outcome["completed"]["info"]["run_id"]
    artifacts = rest(mlflow_server, "artifacts/list", "get", run_id=completed_id, path="config")
    assert "config/config.yaml" in {f["path"] for f in artifacts.get("files", [])}
