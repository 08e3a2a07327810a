"""A job killed with SIGTERM mid-training ends KILLED with a checkpoint; `resume=<run_id>` and then
`ckpt_path=<file>` continue the *same* MLflow run, and `train/loss` has every step exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from src.paths import PROJECT_ROOT

RUN = [  # about 80 steps per epoch, far more steps allowed than the test waits for
    "data=synthetic", "data.num_samples=1024", "data.batch_size=8", "sched=none", "test=false",
    "trainer.max_epochs=-1", "trainer.limit_val_batches=2", "trainer.enable_progress_bar=false",
    "trainer.log_every_n_steps=1",
]


def wait_for_steps(mlflow_client, proc: subprocess.Popen, count: int, timeout: float = 150.0) -> str:  # noqa: ANN001
    """Poll the store until the job's run has `count` train/loss points; return its run id."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the job ended before it was signalled:\n" + proc.stdout.read()
        runs = mlflow_client.search_runs([e.experiment_id for e in mlflow_client.search_experiments()])
        if runs and len(mlflow_client.get_metric_history(runs[0].info.run_id, "train/loss")) >= count:
            return runs[0].info.run_id
        time.sleep(0.2)
    raise AssertionError("the job did not log enough steps in time")


def loss_steps(mlflow_client, run_id: str) -> list[int]:  # noqa: ANN001
    return sorted(m.step for m in mlflow_client.get_metric_history(run_id, "train/loss"))


def test_sigterm_then_resume_continues_the_same_run(run_cli, mlflow_client, mlflow_store, tmp_path, data_dir) -> None:
    cmd = [sys.executable, "-m", "src.train", f"paths.log_dir={tmp_path / 'outputs'}", f"paths.data_dir={data_dir}",
           *RUN, "trainer.max_steps=100000"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_store, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        run_id = wait_for_steps(mlflow_client, proc, count=5)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, out[-3000:]
    assert f"resume={run_id}" in out, "the message says how to continue"

    run = mlflow_client.get_run(run_id)
    assert (run.info.status, run.data.tags["outcome"]) == ("KILLED", "interrupted")
    first = loss_steps(mlflow_client, run_id)
    assert first == list(range(len(first))) and len(first) >= 5
    assert (Path(run.data.tags["checkpoint_dir"]) / "last.ckpt").is_file()
    stop = len(first)  # steps done before the break

    # resume by run id, training 4 steps further (a changed setting, recorded but not re-logged)
    assert run_cli(*RUN, f"resume={run_id}", f"trainer.max_steps={stop + 4}") == 0
    run = mlflow_client.get_run(run_id)
    assert (run.info.status, run.data.tags["outcome"]) == ("FINISHED", "completed")
    assert loss_steps(mlflow_client, run_id) == list(range(stop + 4)), "no duplicated or missing steps"
    assert run.data.params["trainer.max_steps"] == "100000", "params keep their first value"
    assert "trainer.max_steps" in run.data.tags["resume.1.changed_params"].split(",")
    assert run.data.tags["resume.1.ckpt_path"].endswith("last.ckpt")

    # resume again from the new last checkpoint by path: its run id is inside the file
    last = Path(run.data.tags["checkpoint_dir"]) / "last.ckpt"
    assert run_cli(*RUN, f"ckpt_path={last}", f"trainer.max_steps={stop + 6}") == 0
    runs = mlflow_client.search_runs([e.experiment_id for e in mlflow_client.search_experiments()])
    assert [r.info.run_id for r in runs] == [run_id], "still one run"
    assert runs[0].data.tags["resume_count"] == "2"
    assert loss_steps(mlflow_client, run_id) == list(range(stop + 6))
