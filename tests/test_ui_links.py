"""The training view first: project experiments carry MLflow's experiment-kind tag (new ones and old
ones), and the URLs the project prints open the training view; read back through MlflowClient."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from src.tracking.store import get_or_create_experiment
from src.tracking.ui_links import (
    EXPERIMENT_KIND_TAG,
    TRAINING_KIND,
    experiment_url,
    run_url,
    ui_base_url,
)
from tests.conftest import FAST
from tests.mlflow_reads import only_run
from tests.sweeps import load_script


def test_new_experiments_are_made_for_the_training_view(mlflow_client: MlflowClient) -> None:
    experiment_id = get_or_create_experiment(mlflow_client, "fresh")
    assert mlflow_client.get_experiment(experiment_id).tags[EXPERIMENT_KIND_TAG] == TRAINING_KIND


def test_existing_experiments_are_tagged_once_and_a_chosen_kind_is_kept(mlflow_client: MlflowClient) -> None:
    old = mlflow_client.create_experiment("made-before")  # as by an earlier version of the project
    chosen = mlflow_client.create_experiment("chosen", tags={EXPERIMENT_KIND_TAG: "genai_development"})
    assert EXPERIMENT_KIND_TAG not in mlflow_client.get_experiment(old).tags
    assert get_or_create_experiment(mlflow_client, "made-before") == old
    assert mlflow_client.get_experiment(old).tags[EXPERIMENT_KIND_TAG] == TRAINING_KIND
    assert get_or_create_experiment(mlflow_client, "chosen") == chosen
    assert mlflow_client.get_experiment(chosen).tags[EXPERIMENT_KIND_TAG] == "genai_development"


def test_a_training_run_lands_in_a_training_view_experiment(run_cli, mlflow_client: MlflowClient) -> None:
    assert run_cli("data=synthetic", "data.num_samples=64", "trainer.max_steps=1", *FAST) == 0
    run = only_run(mlflow_client)
    assert mlflow_client.get_experiment(run.info.experiment_id).tags[EXPERIMENT_KIND_TAG] == TRAINING_KIND


def test_urls_open_the_training_view() -> None:
    assert run_url("http://127.0.0.1:5000", "3", "abc") == (
        "http://127.0.0.1:5000/#/experiments/3/runs/abc?workflowType=machine_learning")
    assert experiment_url("http://127.0.0.1:5000", "3") == (
        "http://127.0.0.1:5000/#/experiments/3/runs?workflowType=machine_learning")
    assert ui_base_url("sqlite:////x/mlflow.db") == "http://127.0.0.1:5000"
    assert ui_base_url("https://user:secret@mlflow.lab.org:8443/") == "https://mlflow.lab.org:8443"


def test_make_ui_tags_the_project_experiments_and_prints_their_urls(
    mlflow_client: MlflowClient, mlflow_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ours = mlflow_client.create_experiment("ours")
    mlflow_client.create_run(ours, tags={"git_commit": "abc"})
    foreign = mlflow_client.create_experiment("someone-elses")
    mlflow_client.create_run(foreign)
    assert load_script("ui_links").main(["--store", mlflow_store, "--base-url", "http://127.0.0.1:5123"]) == 0
    out = capsys.readouterr().out
    assert f"Experiment ours: {experiment_url('http://127.0.0.1:5123', ours)}" in out
    assert "someone-elses" not in out
    assert mlflow_client.get_experiment(ours).tags[EXPERIMENT_KIND_TAG] == TRAINING_KIND
    assert EXPERIMENT_KIND_TAG not in mlflow_client.get_experiment(foreign).tags
