"""What a sweep leaves in MLflow is true, even when its jobs are killed.

Chaos: a joblib sweep of 6 tiny MLP jobs on 2 workers in which job 1 gets SIGTERM and job 5 SIGKILL
(from a test callback, at a step, chosen per job by a swept override). Automatic reaping is off
(GRADREG_REAP=0) so that the store can be read as the sweep left it, then `python -m src.reap`
closes what is lost, and both killed jobs are resumed by run id alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from src.paths import PROJECT_ROOT
from tests.sweeps import run_sweep, tail

SIGNALS = [0, int(signal.SIGTERM), 0, 0, 0, int(signal.SIGKILL)]  # per job number; 0 sends nothing
CHAOS = [
    "model=mlp", "model.depth=2", "model.width=16", "data.num_samples=128", "data.batch_size=16", "sched=none",
    "trainer.max_steps=-1", "trainer.max_epochs=5", "test=false", "monitor=off",  # 6 steps an epoch, 30 in all
    "+callbacks.chaos._target_=tests.helpers.SignalAtStep", "+callbacks.chaos.step=14",
    "+callbacks.chaos.first_attempt_only=true", "+callbacks.chaos.after_siblings_s=300",
    f"+callbacks.chaos.signum={','.join(map(str, SIGNALS))}",
    "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
]
EXPECTED = {0: ("FINISHED", "completed"), 1: ("KILLED", "interrupted"), 2: ("FINISHED", "completed"),
            3: ("FINISHED", "completed"), 4: ("FINISHED", "completed"), 5: ("KILLED", "lost")}


def table(client: MlflowClient) -> dict[int, tuple[str, str]]:
    """job number -> (status, outcome) of every job run in the store."""
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()], "tags.sweep_role = 'job'")
    return {int(r.data.tags["sweep_job"]): (r.info.status, r.data.tags.get("outcome", "-")) for r in runs}


def parent_of(client: MlflowClient):  # noqa: ANN201
    (parent,) = client.search_runs([e.experiment_id for e in client.search_experiments()],
                                   "tags.sweep_role = 'parent'")
    return parent


def cli(store: str, module: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_TRACKING_URI": store, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=PROJECT_ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow  # a 6-job chaos sweep, then the reaper and a resume
def test_chaos_sweep_ends_with_every_status_true_and_resumes(tmp_path: Path, mlflow_store: str,
                                                            monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("GRADREG_REAP", "0")
    proc = run_sweep(tmp_path, mlflow_store, *CHAOS)
    assert proc.returncode != 0, "the launcher reports the killed worker"
    client = MlflowClient(tracking_uri=mlflow_store)
    before = table(client)
    (tmp_path / "chaos-before.txt").write_text(repr(before))
    assert before == {**EXPECTED, 5: ("RUNNING", "-")}, tail(proc)
    parent = parent_of(client)
    assert parent.data.tags["sweep_planned_jobs"] == "6"
    assert parent.data.tags["sweep_outcomes"] == "completed=4 interrupted=1 running=1"

    monkeypatch.delenv("GRADREG_REAP")
    reaped = cli(mlflow_store, "src.reap")
    assert reaped.returncode == 0, reaped.stderr[-2000:]
    after = table(client)
    (tmp_path / "chaos-after.txt").write_text(repr(after))
    assert after == EXPECTED
    lost_id = next(r.info.run_id for r in client.search_runs([parent.info.experiment_id], "tags.sweep_job = '5'"))
    assert f"python -m src.train resume={lost_id}" in reaped.stdout
    parent = parent_of(client)
    assert (parent.info.status, parent.data.tags["sweep_outcomes"]) == ("KILLED", "completed=4 interrupted=1 lost=1")
    assert not client.search_runs([parent.info.experiment_id], "attributes.status = 'RUNNING'")

    for job in (1, 5):  # each killed job resumes into its own run, by id alone
        (run,) = client.search_runs([parent.info.experiment_id], f"tags.sweep_job = '{job}'")
        resumed = cli(mlflow_store, "src.train", f"resume={run.info.run_id}")
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        run = client.get_run(run.info.run_id)
        assert (run.info.status, run.data.tags["outcome"]) == ("FINISHED", "completed")
        assert run.data.tags["resume.1.previous_outcome"].startswith(EXPECTED[job][1])
        assert run.data.params["callbacks.chaos.signum"] == str(SIGNALS[job]), "its own overrides came back"
        assert max(m.step for m in client.get_metric_history(run.info.run_id, "train/loss")) >= 29
    parent = parent_of(client)
    assert (parent.info.status, parent.data.tags["sweep_outcomes"]) == ("FINISHED", "completed=6")
    assert len(client.search_runs([parent.info.experiment_id])) == 7, "no new run: one parent, six jobs"


@pytest.mark.slow  # a 2-job multirun through the CLI: 38 s loaded
def test_a_sweep_whose_every_job_fails_validation_leaves_no_parent(tmp_path: Path, mlflow_store: str) -> None:
    proc = run_sweep(tmp_path, mlflow_store, "optim.lr=-1", "seed=0,1")
    assert proc.returncode == 2 and "Sweep refused: 2 of its 2 jobs" in proc.stderr, tail(proc)
    assert "optim.lr=-1 is not allowed" in proc.stderr
    client = MlflowClient(tracking_uri=mlflow_store)
    experiments = [e.experiment_id for e in client.search_experiments()]
    assert client.search_runs(experiments, run_view_type=ViewType.ALL) == [], "refused before any parent existed"


@pytest.mark.slow  # a 2-job sweep, one SIGKILLed
def test_a_sweep_closes_its_own_lost_job_before_it_counts(tmp_path: Path, mlflow_store: str) -> None:
    """Reaping on (the default): the sweep's end closes the SIGKILLed job `lost` before tallying."""
    signals = [0, int(signal.SIGKILL)]
    chaos = [o for o in CHAOS if not o.startswith("+callbacks.chaos.signum=")]
    proc = run_sweep(tmp_path, mlflow_store, *chaos, f"+callbacks.chaos.signum={','.join(map(str, signals))}")
    assert proc.returncode != 0
    client = MlflowClient(tracking_uri=mlflow_store)
    assert table(client) == {0: ("FINISHED", "completed"), 1: ("KILLED", "lost")}, tail(proc)
    parent = parent_of(client)
    assert (parent.info.status, parent.data.tags["sweep_outcomes"]) == ("KILLED", "completed=1 lost=1")
    assert "Reaper: run" in proc.stdout and "outcome=lost" in proc.stdout
