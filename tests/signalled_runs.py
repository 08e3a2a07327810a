"""A training job started as a user starts it (`python -m src.train` in a subprocess), signalled once it has
logged a few steps: the shared start of the SIGTERM/SIGKILL tests (resume, the monitor's record, the reaper)."""

from __future__ import annotations

import os
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


def signal_after_steps(
    mlflow_client, mlflow_store: str, tmp_path: Path, data_dir: Path, args: list[str], count: int,  # noqa: ANN001
    signum: int, timeout: float = 60.0,
) -> tuple[str, int, str]:
    """Start `python -m src.train <args> trainer.max_steps=100000`, send `signum` once `count` steps are logged;
    return (run id, exit status, everything it printed)."""
    cmd = [sys.executable, "-m", "src.train", f"paths.log_dir={tmp_path / 'outputs'}", f"paths.data_dir={data_dir}",
           *args, "trainer.max_steps=100000"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_store, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        run_id = wait_for_steps(mlflow_client, proc, count=count)
        proc.send_signal(signum)
        out, _ = proc.communicate(timeout=timeout)
    finally:
        proc.kill()
    return run_id, proc.returncode, out
