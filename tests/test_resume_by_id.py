"""`resume=<run_id>` alone restores the run's overrides; a resume that cannot go on fails before it
touches the run, which keeps its status, outcome and tags. Through the real CLI (`python -m src.train`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from src.lifecycle.resume_overrides import merge_overrides
from src.paths import PROJECT_ROOT
from src.tracking.liveness import process_tags
from tests.mlflow_reads import only_run

FIRST = ["model=mlp", "data=synthetic", "data.num_samples=96", "sched=none", "trainer.max_epochs=2",
         "trainer.limit_val_batches=1", "trainer.limit_test_batches=1", "trainer.enable_progress_bar=false",
         "trainer.log_every_n_steps=1"]


def cli(tmp_path: Path, store: str, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_TRACKING_URI": store, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "src.train", *overrides]
    return subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def finished_mlp_run(tmp_path: Path, mlflow_store: str, mlflow_client) -> str:  # noqa: ANN001
    proc = cli(tmp_path, mlflow_store, f"paths.log_dir={tmp_path / 'outputs'}", *FIRST)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = only_run(mlflow_client)
    assert (run.info.status, run.data.tags["outcome"]) == ("FINISHED", "completed")
    return run.info.run_id


def record(mlflow_client, run_id: str) -> tuple:  # noqa: ANN001
    run = mlflow_client.get_run(run_id)
    return run.info.status, run.info.end_time, dict(run.data.tags), dict(run.data.params)


@pytest.mark.slow  # two runs through the CLI
def test_resume_by_id_alone_restores_the_run_overrides(tmp_path, mlflow_store, mlflow_client, finished_mlp_run) -> None:  # noqa: ANN001
    steps = len(mlflow_client.get_metric_history(finished_mlp_run, "train/loss"))
    proc = cli(tmp_path, mlflow_store, f"resume={finished_mlp_run}", f"trainer.max_steps={steps + 4}",
               "trainer.max_epochs=-1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Resuming run" in proc.stdout and "model=mlp" in proc.stdout, "it says which overrides came back"
    run = mlflow_client.get_run(finished_mlp_run)
    assert (run.info.status, run.data.tags["outcome"]) == ("FINISHED", "completed")
    assert run.data.tags["resume_count"] == "1"
    assert run.data.tags["resume.1.overrides"] == f"resume={finished_mlp_run} trainer.max_steps={steps + 4} " \
                                                  "trainer.max_epochs=-1", "only the typed ones are recorded"
    assert run.data.tags["resume.1.previous_outcome"] == "completed"
    logged = [m.step for m in mlflow_client.get_metric_history(finished_mlp_run, "train/loss")]
    assert len(logged) > steps and max(logged) >= steps + 3, "training went on towards the new max_steps"
    last = torch.load(Path(run.data.tags["checkpoint_dir"]) / "last.ckpt", weights_only=False, map_location="cpu")
    assert any(k.startswith("net.layers.") for k in last["state_dict"]), "with the MLP of the first start"


@pytest.mark.slow  # a run, then a refused resume, through the CLI
def test_a_resume_that_does_not_fit_the_model_leaves_the_run_as_it_was(tmp_path, mlflow_store, mlflow_client,  # noqa: ANN001
                                                                       finished_mlp_run) -> None:
    before = record(mlflow_client, finished_mlp_run)
    proc = cli(tmp_path, mlflow_store, f"resume={finished_mlp_run}", "model=lenet5", "trainer.max_steps=10")
    assert proc.returncode != 0
    assert "does not fit the model this config builds" in proc.stderr and "The run was not changed" in proc.stderr
    assert "load_state_dict" not in proc.stderr
    assert record(mlflow_client, finished_mlp_run) == before


@pytest.mark.slow  # a run, then a refused resume, through the CLI
def test_a_truncated_last_checkpoint_is_refused_naming_the_last_good_one(tmp_path, mlflow_store, mlflow_client,  # noqa: ANN001
                                                                         finished_mlp_run) -> None:
    folder = Path(mlflow_client.get_run(finished_mlp_run).data.tags["checkpoint_dir"])
    last = folder / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    good = next(p for p in folder.glob("epoch*.ckpt"))
    before = record(mlflow_client, finished_mlp_run)
    proc = cli(tmp_path, mlflow_store, f"resume={finished_mlp_run}")
    assert proc.returncode != 0
    assert f"Checkpoint {last} cannot be used" in proc.stderr
    assert f"The last good checkpoint beside it is {good}" in proc.stderr
    assert record(mlflow_client, finished_mlp_run) == before


def test_a_run_still_running_in_a_live_process_is_not_resumed(run_cli, mlflow_client, tmp_path) -> None:  # noqa: ANN001
    experiment = mlflow_client.create_experiment("gradreg")
    tags = {**process_tags(), "checkpoint_dir": str(tmp_path)}  # this very process: alive
    run_id = mlflow_client.create_run(experiment, tags=tags).info.run_id
    assert run_cli(f"resume={run_id}") != 0
    run = mlflow_client.get_run(run_id)
    assert run.info.status == "RUNNING" and "resume_count" not in run.data.tags


def test_merge_keeps_one_value_per_key_the_later_winning() -> None:
    stored = ["model=mlp", "+callbacks.sig._target_=x.Y", "+callbacks.sig.step=5", "resume=abc", "seed=1"]
    typed = ["resume=abc", "callbacks.sig.step=9", "~callbacks.sig._target_", "seed=2"]
    assert merge_overrides(stored, typed) == ["model=mlp", "++callbacks.sig.step=9", "seed=2", "resume=abc"]


@pytest.mark.slow  # two runs
def test_a_run_that_ended_on_max_steps_mid_epoch_continues_from_its_last_step(run_cli, mlflow_client) -> None:  # noqa: ANN001
    """last.ckpt is written where training ended, so continuing a finished run trains no step twice."""
    short = [o for o in FIRST if not o.startswith("trainer.max_epochs")] + ["trainer.max_epochs=-1"]
    assert run_cli(*short, "trainer.max_steps=5") == 0  # 3 steps an epoch: it ends inside the second epoch
    run_id = only_run(mlflow_client).info.run_id
    assert run_cli(f"resume={run_id}", "trainer.max_steps=8") == 0
    steps = sorted(m.step for m in mlflow_client.get_metric_history(run_id, "train/loss"))
    assert steps == list(range(8)), steps
