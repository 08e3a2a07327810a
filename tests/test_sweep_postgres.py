"""The cluster setup for real: PostgreSQL as the backend store of an `mlflow server` (proxied
artifacts), a 4-job parallel joblib sweep logged to it over HTTP, and every run, param, metric and
artifact read back through `MlflowClient`. Skips, saying why, where PostgreSQL cannot be had."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from tests.mlflow_reads import assert_params_are_the_config, is_a_location
from tests.servers import mlflow_server, postgres_cluster
from tests.sweeps import TINY, run_sweep, tail


@pytest.fixture
def server_on_postgres(tmp_path: Path):  # noqa: ANN201
    with postgres_cluster() as database, \
            mlflow_server(database, tmp_path / "artifacts", tmp_path / "server.log", start_timeout_s=240) as url:
        yield url, database


@pytest.mark.slow  # PostgreSQL, an mlflow server, a 4-job sweep
def test_parallel_sweep_on_a_postgres_backed_server(tmp_path: Path, server_on_postgres) -> None:  # noqa: ANN001
    url, database = server_on_postgres
    started = time.monotonic()
    proc = run_sweep(tmp_path, url, "optim=sgd,adam", "seed=0,1", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    sweep_s = time.monotonic() - started
    assert proc.returncode == 0, tail(proc)
    print(f"\n4-job joblib sweep against mlflow server on PostgreSQL: {sweep_s:.1f} s")

    client = MlflowClient(tracking_uri=url)
    experiment = client.get_experiment_by_name("gradreg")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("sweep_role") == "parent"]
    children = [r for r in runs if r.data.tags.get("sweep_role") == "job"]
    assert len(parents) == 1 and len(children) == 4 and len(runs) == 5
    parent = parents[0]
    assert (parent.info.status, parent.data.tags["sweep_outcomes"]) == ("FINISHED", "completed=4")
    sweep_yaml = OmegaConf.load(client.download_artifacts(parent.info.run_id, "config/sweep.yaml", str(tmp_path)))
    assert sweep_yaml.sweep_id == parent.data.tags["sweep_id"]

    max_steps = int(next(o for o in TINY if o.startswith("trainer.max_steps=")).split("=")[1])
    combos = set()
    for run in children:
        run_id, tags = run.info.run_id, run.data.tags
        assert (run.info.status, tags["outcome"]) == ("FINISHED", "completed")
        assert tags["mlflow.parentRunId"] == parent.info.run_id and tags["host"] and tags["pid"]
        local = tmp_path / "artifacts-of" / run_id
        config = OmegaConf.load(client.download_artifacts(run_id, "config/config.yaml", str(local)))
        assert_params_are_the_config(run.data.params, config)  # every param is the resolved config's value
        assert "location.paths.output_dir" in tags and not [k for k in run.data.params if is_a_location(k)]
        overrides = OmegaConf.load(client.download_artifacts(run_id, "config/overrides.yaml", str(local)))
        assert f"seed={run.data.params['seed']}" in overrides
        assert [m.step for m in client.get_metric_history(run_id, "train/loss")] == list(range(max_steps))
        assert 0.0 <= run.data.metrics["test/acc"] <= 1.0
        assert {"config/config.yaml", "config/overrides.yaml", "events.jsonl"} <= {
            a.path for a in client.list_artifacts(run_id)} | {a.path for a in client.list_artifacts(run_id, "config")}
        combos.add((tags["choice.optim"], run.data.params["seed"]))
    assert combos == {("sgd", "0"), ("sgd", "1"), ("adam", "0"), ("adam", "1")}

    import psycopg2  # the rows really are in PostgreSQL, not in a store the server kept elsewhere

    with psycopg2.connect(database.replace("+psycopg2", "")) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT status, count(*) FROM runs WHERE lifecycle_stage = 'active' GROUP BY status")
        assert dict(cursor.fetchall()) == {"FINISHED": 5}
