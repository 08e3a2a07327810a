"""Faults around a run's checkpoints, through the real CLI (`python -m src.train`), the store asserted after:
two runs sharing a `hydra.run.dir`, a checkpoint of another run in a run's folder, a resume with no step to
train, and a `.partial` file a killed save left behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from src.paths import PROJECT_ROOT

RUN = ["data=synthetic", "data.num_samples=96", "sched=none", "trainer.max_epochs=2", "trainer.limit_val_batches=1",
       "test=false", "trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1"]  # 3 steps an epoch


def cli(store: str, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_TRACKING_URI": store, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "src.train", *overrides], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def run_ids(mlflow_client) -> list[str]:  # noqa: ANN001
    runs = mlflow_client.search_runs([e.experiment_id for e in mlflow_client.search_experiments()],
                                     order_by=["attributes.start_time ASC"])
    return [r.info.run_id for r in runs]


def record(mlflow_client, run_id: str) -> tuple:  # noqa: ANN001
    run = mlflow_client.get_run(run_id)
    return run.info.status, run.info.end_time, dict(run.data.tags), dict(run.data.params), dict(run.data.metrics)


def owner(path: Path) -> str:
    return torch.load(path, weights_only=False, map_location="cpu")["gradreg"]["mlflow_run_id"]


@pytest.mark.slow  # two runs and a refused resume through the CLI
def test_runs_sharing_a_folder_keep_their_own_checkpoints_and_a_foreign_one_is_refused(
        tmp_path, mlflow_store, mlflow_client) -> None:  # noqa: ANN001
    shared = [f"hydra.run.dir={tmp_path / 'shared'}", f"paths.log_dir={tmp_path / 'out'}"]
    assert cli(mlflow_store, *shared, *RUN).returncode == 0
    assert cli(mlflow_store, *shared, *RUN, "seed=1").returncode == 0
    first, second = run_ids(mlflow_client)
    folders = {r: Path(mlflow_client.get_run(r).data.tags["checkpoint_dir"]) for r in (first, second)}
    assert folders[first] == tmp_path / "shared" / "checkpoints"
    assert folders[second] == folders[first] / second, "the second run's checkpoints do not overwrite the first's"
    for run_id, folder in folders.items():
        names = sorted(p.name for p in folder.glob("*.ckpt"))
        assert "last.ckpt" in names and not [n for n in names if n.startswith("last-")], names
        assert {owner(p) for p in folder.glob("*.ckpt")} == {run_id}

    # the layout before runs kept their own folder: the second run's last.ckpt over the first's
    shutil.copy(folders[second] / "last.ckpt", folders[first] / "last.ckpt")
    before = record(mlflow_client, first)
    proc = cli(mlflow_store, f"resume={first}", "trainer.max_epochs=3")
    assert proc.returncode == 2, proc.stderr[-2000:]
    line = proc.stderr.strip().splitlines()[0]
    own = next(folders[first].glob("epoch*.ckpt"))
    assert f"is a checkpoint of run {second}, not of run {first}" in line and f"ckpt_path={own}" in line, line
    assert "Traceback" not in proc.stderr
    assert record(mlflow_client, first) == before, "the refused resume changed nothing"


@pytest.mark.slow  # a run and two resumes through the CLI
def test_a_resume_with_nothing_to_train_leaves_the_run_and_one_that_trains_keeps_its_folder(
        tmp_path, mlflow_store, mlflow_client) -> None:  # noqa: ANN001
    assert cli(mlflow_store, f"paths.log_dir={tmp_path / 'out'}", *RUN).returncode == 0
    (run_id,) = run_ids(mlflow_client)
    folder = Path(mlflow_client.get_run(run_id).data.tags["checkpoint_dir"])
    stale = folder / ".last.ckpt.partial"
    stale.write_bytes(b"half a checkpoint")  # what a save killed mid-write leaves
    before = record(mlflow_client, run_id)

    proc = cli(mlflow_store, f"paths.log_dir={tmp_path / 'out'}", f"resume={run_id}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"Nothing to train for run {run_id}" in proc.stdout and "trainer.max_epochs=2" in proc.stdout
    assert record(mlflow_client, run_id) == before, "status, end time, tags, params and metrics as they were"
    proc = cli(mlflow_store, f"paths.log_dir={tmp_path / 'out'}", f"resume={run_id}", "trainer.max_steps=4")
    assert proc.returncode == 0 and "Nothing to train" in proc.stdout, "a smaller max_steps trains nothing either"
    assert record(mlflow_client, run_id) == before

    proc = cli(mlflow_store, f"paths.log_dir={tmp_path / 'out'}", f"resume={run_id}", "trainer.max_epochs=3")
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = mlflow_client.get_run(run_id)
    assert (run.info.status, run.data.tags["outcome"], run.data.tags["resume_count"]) == ("FINISHED", "completed", "1")
    assert Path(run.data.tags["checkpoint_dir"]) == folder, "the run's checkpoint folder is not re-pointed"
    names = sorted(p.name for p in folder.iterdir())
    assert "last.ckpt" in names and not [n for n in names if n.startswith("last-") or n.endswith(".partial")], names
    assert torch.load(folder / "last.ckpt", weights_only=False, map_location="cpu")["global_step"] == 9
    steps = [m.step for m in mlflow_client.get_metric_history(run_id, "train/loss")]
    assert sorted(steps) == list(range(9)), "every step logged exactly once"


@pytest.mark.slow  # a run and a resume through the CLI
def test_an_end_of_training_hook_that_fails_leaves_last_ckpt_at_the_last_step(tmp_path, mlflow_store,  # noqa: ANN001
                                                                           mlflow_client) -> None:
    short = [o for o in RUN if not o.startswith("trainer.max_epochs")] + ["trainer.max_epochs=-1"]
    out = f"paths.log_dir={tmp_path / 'out'}"
    boom = ["+callbacks.boom._target_=tests.fault_probes.RaiseAtTrainEnd", "+callbacks.boom.until_step=5"]
    proc = cli(mlflow_store, out, *short, "trainer.max_steps=5", *boom)
    assert proc.returncode == 1 and "an end-of-training hook failed" in proc.stderr  # a crash: traceback, exit 1
    (run_id,) = run_ids(mlflow_client)
    run = mlflow_client.get_run(run_id)
    assert (run.info.status, run.data.tags["outcome"]) == ("FAILED", "failed")
    folder = Path(run.data.tags["checkpoint_dir"])
    assert torch.load(folder / "last.ckpt", weights_only=False, map_location="cpu")["global_step"] == 5
    proc = cli(mlflow_store, out, f"resume={run_id}", "trainer.max_steps=8")  # the hook is restored, silent after 5
    assert proc.returncode == 0, proc.stderr[-2000:]
    steps = [m.step for m in mlflow_client.get_metric_history(run_id, "train/loss")]
    assert sorted(steps) == list(range(8)), "steps 0-4 not trained and logged again"
