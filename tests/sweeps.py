"""Helpers for the sweep tests: run the real CLI (`python -m src.train -m ...`) as a subprocess on a
fresh MLflow store, then read the sweep back (parent run + nested job runs)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient

from src.paths import PROJECT_ROOT
from src.tracking.sweeps import SWEEP_FILE
from tests.mlflow_reads import all_runs

TINY = [  # seconds per job, after ~15 s of imports per process
    "data=synthetic",
    "data.num_samples=64",
    "trainer.max_steps=2",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.enable_progress_bar=false",
    "trainer.log_every_n_steps=1",
]
# A NaN written into the first conv's gradient at `+callbacks.poison.step` (tests/gradient_probes.py)
NAN_AT_STEP = (
    "+callbacks.poison._target_=tests.gradient_probes.PoisonGradient",
    "+callbacks.poison.modules=[features.0]",
)


def run_sweep(tmp_path: Path, tracking_uri: str, *overrides: str, timeout: int = 400) -> subprocess.CompletedProcess:
    """`python -m src.train -m <TINY> <overrides>` from the project root; outputs under `tmp_path`."""
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}  # as a user runs it
    env.update(MLFLOW_TRACKING_URI=tracking_uri, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "src.train", "-m", f"paths.log_dir={tmp_path / 'outputs'}", *TINY, *overrides]
    proc = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    (tmp_path / "sweep.log").write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    return proc


def tail(proc: subprocess.CompletedProcess, n: int = 3000) -> str:
    """The end of a sweep's output, for assertion messages."""
    return (proc.stdout + proc.stderr)[-n:]


def sweep_runs(mlflow_client: Any) -> tuple[Any, list[Any]]:
    """The one parent run of the store and every other run (asserts there is exactly one parent)."""
    runs = all_runs(mlflow_client)
    parents = [r for r in runs if r.data.tags.get("sweep_role") == "parent"]
    assert len(parents) == 1, f"expected one sweep parent run, found {len(parents)}"
    return parents[0], [r for r in runs if r.data.tags.get("sweep_role") != "parent"]


def load_script(name: str) -> Any:
    """`scripts/<name>.py` as a module (its `main(argv)` is the command line)."""
    spec = importlib.util.spec_from_file_location(f"{name}_script", PROJECT_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_report_script() -> Any:
    """`scripts/report.py` as a module (its `main(argv)` is the command line)."""
    return load_script("report")


def loss_steps(client: MlflowClient, run_id: str) -> list[int]:
    """The steps of a run's logged `train/loss` points, in order."""
    return sorted(m.step for m in client.get_metric_history(run_id, "train/loss"))


def wait_for_jobs(proc: subprocess.Popen, tmp: Path, uri: str, ready: Callable[[MlflowClient, list[Any]], Any],
                  what: str, log: Callable[[], str], timeout: float = 900) -> Any:
    """Poll a running sweep's job runs until `ready(client, job_runs)` gives something other than None; return it.

    The store is read only after the sweep's launcher wrote its sweep file (under `tmp/outputs/multiruns`):
    opening a new sqlite store creates its tables, and two creators would race. The sweep ending first, or
    `timeout` seconds passing, fails the test with `what` did not happen and the sweep's `log()`."""
    deadline = time.monotonic() + timeout
    client = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the sweep ended before {what}:\n{log()}"
        if client is None and list((tmp / "outputs").glob(f"multiruns/*/{SWEEP_FILE}")):
            client = MlflowClient(tracking_uri=uri)
        if client is not None:
            jobs = [r for r in client.search_runs([e.experiment_id for e in client.search_experiments()])
                    if r.data.tags.get("sweep_role") == "job"]
            found = ready(client, jobs)
            if found is not None:
                return found
        time.sleep(0.3)
    raise AssertionError(f"{what}: not within {timeout:g} s:\n{log()}")
