"""The real entry point, in-process, on tiny synthetic runs: it trains and leaves a complete MLflow run."""

from __future__ import annotations

import pytest

from tests.conftest import FAST


@pytest.mark.parametrize("model", ["lenet5", "resnet152", "vgg19"])
def test_each_model_trains_and_is_tracked(run_cli, mlflow_client, model: str) -> None:
    extra = [] if model == "lenet5" else ["model.width=0.0625"]
    assert run_cli(f"model={model}", "data=synthetic", "data.num_samples=64", "trainer.max_steps=2", *FAST, *extra) == 0
    runs = mlflow_client.search_runs(mlflow_client.search_experiments()[0].experiment_id)
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.tags["outcome"] == "completed"
    assert run.info.run_name == f"{model}-none-sgd-s0"
    assert run.data.params["model._target_"].endswith(model)
    assert "train/loss" in run.data.metrics and "test/acc" in run.data.metrics
    artifacts = {a.path for a in mlflow_client.list_artifacts(run.info.run_id, "config")}
    assert artifacts == {"config/config.yaml", "config/overrides.yaml"}
