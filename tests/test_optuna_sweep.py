"""Search with Hydra's Optuna sweeper: the example study composes, its trials nest under the sweep's parent
run like grid jobs (with names from the searched values), and the study's best trial is tagged on the parent."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from src.tracking.study_result import RESULTS_FILE, record_study_result, study_tags
from tests.sweeps import run_sweep, sweep_runs, tail


def test_the_example_study_composes_as_a_search(compose) -> None:
    cfg = compose("experiment=l2_search", hydra_node=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.direction == "maximize"
    assert set(sweeper.params) == {"reg.l2.strength", "optim.lr"}
    assert all(str(v).startswith("tag(log, interval(") for v in sweeper.params.values())
    assert list(cfg.reg) == ["l2"] and cfg.optimized_metric == "val/acc" and cfg.logger.experiment_name == "l2_search"


def test_results_become_tags_and_a_grid_sweep_gets_none(tmp_path: Path, mlflow_client: MlflowClient) -> None:
    parent = mlflow_client.create_run(mlflow_client.create_experiment("grid")).info.run_id
    assert record_study_result(mlflow_client, parent, tmp_path) == {}  # no results file: nothing tagged
    pareto = study_tags({"name": "optuna", "solutions": [{"params": {"optim.lr": 0.1}, "values": [0.9, 3.0]}]}, [])
    assert pareto == {"study.sweeper": "optuna",
                      "study.pareto_front": '[{"params": {"optim.lr": 0.1}, "values": [0.9, 3.0]}]'}


@pytest.mark.slow  # 3 Optuna trials through the CLI
def test_optuna_trials_nest_under_the_parent_which_records_the_best(tmp_path: Path, mlflow_store: str) -> None:
    proc = run_sweep(tmp_path, mlflow_store, "experiment=l2_search", "hydra.sweeper.n_trials=3",
                     "hydra.sweeper.sampler.n_startup_trials=2")
    assert proc.returncode == 0, tail(proc)
    client = MlflowClient(tracking_uri=mlflow_store)
    parent, trials = sweep_runs(client)
    assert len(trials) == 3 and parent.info.status == "FINISHED"
    assert all(t.data.tags["mlflow.parentRunId"] == parent.info.run_id for t in trials)
    assert len({t.info.run_name for t in trials}) == 3
    assert all(t.info.run_name.startswith("lenet5-l2-sgd-lam") and "-lr" in t.info.run_name for t in trials)

    results = yaml.safe_load(next((tmp_path / "outputs" / "multiruns").glob(f"*/{RESULTS_FILE}")).read_text())
    tags = parent.data.tags
    assert float(tags["study.best_value"]) == pytest.approx(results["best_value"])
    assert tags["study.best_params"] == " ".join(f"{k}={v}" for k, v in results["best_params"].items())
    assert float(tags["study.best.optim.lr"]) == pytest.approx(results["best_params"]["optim.lr"])
    best = client.get_run(tags["study.best_run_id"])
    assert best.data.metrics["val/acc"] == pytest.approx(results["best_value"])
    assert best.data.metrics["val/acc"] == pytest.approx(max(t.data.metrics["val/acc"] for t in trials))
    assert tags["study.best_run_name"] == best.info.run_name
    assert f"study/{RESULTS_FILE}" in {a.path for a in client.list_artifacts(parent.info.run_id, "study")}
