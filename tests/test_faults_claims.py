"""One process per run: racers for a run's claim, on sqlite and on the PostgreSQL-backed MLflow server, and two
real `python -m src.train resume=<id>` started together (the store asserted afterwards)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from mlflow import MlflowClient

from src.paths import PROJECT_ROOT
from src.tracking import claim
from src.tracking.claim import CLAIM_PREFIX, RELEASED_TAG, RunClaimed, claim_run
from src.tracking.liveness import process_tags
from src.tracking.outcome import finish_run
from tests.servers import mlflow_server, postgres_cluster

RACERS = 6


def race(uri: str, run_id: str, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, object]]:
    """RACERS threads that all read the run before any of them writes its claim; (pid given, result) each."""
    both_read = threading.Barrier(RACERS, timeout=60)
    original = claim.refuse_if_held

    def read_then_wait(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        attempt = original(*args, **kwargs)
        both_read.wait()  # nobody writes before everybody has read
        return attempt

    monkeypatch.setattr(claim, "refuse_if_held", read_then_wait)
    results: list[tuple[str, object]] = []

    def racer(pid: str) -> None:
        process = {**process_tags(), "pid": pid}
        try:
            results.append((pid, claim_run(MlflowClient(uri), run_id, process, f"resume={run_id!r}", 900.0)))
        except RunClaimed as err:
            results.append((pid, err))

    threads = [threading.Thread(target=racer, args=(str(os.getpid() + i),)) for i in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def assert_one_winner(mlflow_client: MlflowClient, run_id: str, results: list[tuple[str, object]]) -> None:
    winners = [pid for pid, result in results if result == 1]
    losers = [result for _, result in results if isinstance(result, RunClaimed)]
    assert len(results) == RACERS and len(winners) == 1 and len(losers) == RACERS - 1, results
    token = mlflow_client.get_run(run_id).data.params[f"{CLAIM_PREFIX}1"]
    assert token.split("|")[1] == winners[0], "the claim stored is the winner's"
    for err in losers:
        assert f"pid {winners[0]} on " in str(err) and run_id in str(err), err


def test_racers_that_read_the_run_together_leave_exactly_one_claim_on_sqlite(mlflow_client, mlflow_store,  # noqa: ANN001
                                                                             monkeypatch) -> None:
    run_id = mlflow_client.create_run(mlflow_client.create_experiment("gradreg")).info.run_id
    mlflow_client.set_terminated(run_id, "KILLED")
    assert_one_winner(mlflow_client, run_id, race(mlflow_store, run_id, monkeypatch))


@pytest.mark.slow  # a PostgreSQL cluster and an MLflow server
def test_racers_leave_exactly_one_claim_on_the_postgres_backed_server(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    with postgres_cluster() as database, \
            mlflow_server(database, tmp_path / "artifacts", tmp_path / "server.log", start_timeout_s=240) as url:
        server = MlflowClient(url)
        run_id = server.create_run(server.create_experiment("gradreg")).info.run_id
        server.set_terminated(run_id, "KILLED")
        assert_one_winner(server, run_id, race(url, run_id, monkeypatch))


def test_a_live_claim_refuses_the_next_and_a_released_one_does_not(mlflow_client, mlflow_store) -> None:  # noqa: ANN001
    run_id = mlflow_client.create_run(mlflow_client.create_experiment("gradreg")).info.run_id
    mlflow_client.set_terminated(run_id, "KILLED")
    assert claim_run(mlflow_client, run_id, process_tags(), "resume", 900.0) == 1  # this process: alive
    with pytest.raises(RunClaimed, match=f"pid {os.getpid()} on "):
        claim_run(mlflow_client, run_id, process_tags(), "resume", 900.0)
    finish_run(mlflow_client, run_id, "interrupted")
    assert mlflow_client.get_run(run_id).data.tags[RELEASED_TAG] == "1"
    assert claim_run(mlflow_client, run_id, process_tags(), "resume", 900.0) == 2


def test_the_claim_of_a_dead_process_is_taken_over(mlflow_client, mlflow_store) -> None:  # noqa: ANN001
    run_id = mlflow_client.create_run(mlflow_client.create_experiment("gradreg")).info.run_id
    mlflow_client.set_terminated(run_id, "KILLED")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert claim_run(mlflow_client, run_id, {**process_tags(), "pid": str(dead.pid), "pid_start": ""}, "r", 900.0) == 1
    assert claim_run(mlflow_client, run_id, process_tags(), "resume", 900.0) == 2, "killed unseen: not released"


RUN = ["data=synthetic", "data.num_samples=96", "sched=none", "trainer.max_epochs=2", "trainer.limit_val_batches=1",
       "test=false", "trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1"]  # 3 steps an epoch


@pytest.mark.slow  # three runs through the CLI, two of them at once
def test_two_resumes_of_one_run_started_together_train_it_once(tmp_path, mlflow_store, mlflow_client) -> None:  # noqa: ANN001
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_store, "PYTHONUNBUFFERED": "1"}
    train = [sys.executable, "-m", "src.train", f"paths.log_dir={tmp_path / 'out'}"]
    first = subprocess.run([*train, *RUN], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    (run,) = mlflow_client.search_runs([e.experiment_id for e in mlflow_client.search_experiments()])
    run_id = run.info.run_id
    procs = [subprocess.Popen([*train, f"resume={run_id}", "trainer.max_epochs=6"], cwd=PROJECT_ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [(p.pid, *p.communicate(timeout=400), p.returncode) for p in procs]
    codes = sorted(code for *_, code in outs)
    assert codes == [0, 2], [(code, err[-1500:]) for *_, err, code in outs]
    winner = next(pid for pid, _, _, code in outs if code == 0)
    loser_err = next(err for _, _, err, code in outs if code == 2)
    line = loser_err.strip().splitlines()[0]
    assert run_id in line and f"pid {winner} on " in line and "Traceback" not in loser_err, loser_err[-2000:]
    run = mlflow_client.get_run(run_id)
    assert (run.info.status, run.data.tags["outcome"], run.data.tags["pid"]) == ("FINISHED", "completed", str(winner))
    assert run.data.tags["resume_count"] == "1" and run.data.tags[RELEASED_TAG] == "1"
    steps = [m.step for m in mlflow_client.get_metric_history(run_id, "train/loss")]
    assert sorted(steps) == list(range(18)), "every step logged exactly once"
    assert not [p for p in Path(run.data.tags["checkpoint_dir"]).iterdir() if p.name.startswith("last-")]
