"""The real entry point, in-process, on tiny synthetic runs: it trains and leaves a complete MLflow run."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import FAST
from tests.mlflow_reads import all_runs, assert_params_are_the_config, only_run


@pytest.mark.parametrize("model", ["lenet5", pytest.param("resnet152", marks=pytest.mark.slow), "vgg19"])  # 61 s loaded
def test_each_model_trains_and_is_tracked(run_cli, mlflow_client, model: str) -> None:
    extra = [] if model == "lenet5" else ["model.width=0.0625"]
    assert run_cli(f"model={model}", "data=synthetic", "data.num_samples=64", "trainer.max_steps=2", *FAST, *extra) == 0
    run = only_run(mlflow_client)
    assert run.info.status == "FINISHED"
    assert run.data.tags["outcome"] == "completed"
    width = "" if model == "lenet5" else "-w0.0625"  # the command line's overrides, in short form
    assert run.info.run_name == f"{model}-none-sgd-synthetic-n64{width}-ep1-steps2-trainb4-valb2-testb2-s0"
    assert run.data.params["model._target_"].endswith(model)
    assert "train/loss" in run.data.metrics and "test/acc" in run.data.metrics
    artifacts = {a.path for a in mlflow_client.list_artifacts(run.info.run_id, "config")}
    assert artifacts == {"config/config.yaml", "config/overrides.yaml"}


@pytest.mark.parametrize("model", ["lenet5", "resnet152", "vgg19"])
def test_fast_dev_run_per_model(compose, tmp_path, model: str) -> None:
    import pytorch_lightning as pl

    from src.training.builders import build_datamodule, build_module

    thin = [] if model == "lenet5" else ["model.width=0.0625"]
    cfg = compose(f"model={model}", "data=synthetic", "data.num_samples=64", "data.image_size=32", *thin)
    trainer = pl.Trainer(fast_dev_run=True, accelerator="cpu", logger=False, default_root_dir=tmp_path,
                         enable_progress_bar=False)
    module = build_module(cfg)
    before = [p.detach().clone() for p in module.parameters()]
    trainer.fit(module, datamodule=build_datamodule(cfg))
    assert trainer.global_step == 1
    assert any(not torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))


def test_params_keep_full_values(compose, mlflow_client, tmp_path) -> None:
    from omegaconf import OmegaConf, open_dict

    from src.tracking.runs import start_run

    cfg = compose(f"paths.output_dir={tmp_path}")
    long_value = "x" * 1000  # Lightning's MLFlowLogger would cut this at 250 characters
    with open_dict(cfg):
        cfg.note = long_value
    client, run_id = start_run(cfg, {"model": "lenet5", "optim": "sgd"}, ["+note=..."])
    params = mlflow_client.get_run(run_id).data.params
    assert params["note"] == long_value
    assert params["model.activation"] == "tanh"
    assert_params_are_the_config(params, OmegaConf.create(OmegaConf.to_container(cfg, resolve=True)))


def test_unknown_model_knob_fails_before_any_run(run_cli, mlflow_client, capsys) -> None:
    assert run_cli("model=lenet5", "+model.batch_norm=true") != 0
    err = capsys.readouterr().err
    assert "model.batch_norm is not a setting of lenet5" in err and "'pool'" in err
    assert all_runs(mlflow_client) == []


def test_end_of_run_says_where_the_run_is(run_cli, mlflow_client, capsys) -> None:
    assert run_cli("data=synthetic", "data.in_channels=1", "data.num_samples=64", "trainer.max_steps=1", *FAST) == 0
    out = capsys.readouterr().out
    run = only_run(mlflow_client)
    assert f"MLflow run {run.info.run_name} (id {run.info.run_id})" in out
    assert run.info.run_name.startswith("lenet5-none-sgd-synthetic-n64-ch1-")
    assert f"test/acc = {run.data.metrics['test/acc']:.4f}" in out
    assert "mlflow ui --backend-store-uri sqlite:///" in out and "--host 127.0.0.1" in out
    run_page = f"http://127.0.0.1:5000/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    assert f"Run page:    {run_page}?workflowType=machine_learning" in out
