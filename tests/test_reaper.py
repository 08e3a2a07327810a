"""Liveness and the reaper: a run whose process is gone is closed KILLED/`lost`, a live one never is.

Runs are made with `MlflowClient.create_run` and the liveness tags a real process would write;
the last test SIGKILLs a real `python -m src.train` and lets the next run's start close it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from src.paths import PROJECT_ROOT
from src.tracking.liveness import HEARTBEAT_TAG, Heartbeat, hostname, parse_utc, process_start, process_tags
from src.tracking.reaper import liveness_settings, reap
from tests.signalled_runs import RUN, wait_for_steps


def dead_process_tags() -> dict[str, str]:
    """The liveness tags a process wrote before it died (a real child process, waited for)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        tags = {**process_tags(), "pid": str(child.pid), "pid_start": process_start(child.pid) or ""}
    finally:
        child.kill()
        child.wait()
    return tags


def make_run(mlflow_client, name: str, tags: dict[str, str]) -> str:  # noqa: ANN001
    experiment = mlflow_client.get_experiment_by_name("Default").experiment_id
    return mlflow_client.create_run(experiment, run_name=name, tags=tags).info.run_id


def test_a_live_run_beside_a_dead_one(mlflow_client, caplog) -> None:  # noqa: ANN001
    live = make_run(mlflow_client, "live", process_tags())
    dead = make_run(mlflow_client, "dead", dead_process_tags())
    closed = reap(mlflow_client)
    assert [lost.run_id for lost in closed] == [dead]
    assert mlflow_client.get_run(live).info.status == "RUNNING"
    run = mlflow_client.get_run(dead)
    assert (run.info.status, run.data.tags["outcome"]) == ("KILLED", "lost")
    assert "is gone" in run.data.tags["lost.reason"]
    assert run.data.tags["resume_hint"] == f"python -m src.train resume={dead}"
    assert f"python -m src.train resume={dead}" in caplog.text
    assert reap(mlflow_client) == [], "a second pass finds nothing more"


def test_a_reused_pid_is_told_apart_by_its_start_time(mlflow_client) -> None:  # noqa: ANN001
    mine = process_tags()
    space, ticks = mine["pid_start"].rsplit(":", 1)
    reused = make_run(mlflow_client, "reused", {**mine, "pid_start": f"{space}:{int(ticks) - 1}"})
    closed = reap(mlflow_client)
    assert [lost.run_id for lost in closed] == [reused]
    assert "now belongs to another process" in mlflow_client.get_run(reused).data.tags["lost.reason"]


def test_other_hosts_are_judged_by_their_heartbeat(mlflow_client) -> None:  # noqa: ANN001
    def beat(minutes_ago: float) -> str:
        return (datetime.now(UTC) - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")

    elsewhere = {"host": f"not-{hostname()}", "pid": "4242", "pid_start": "x:y:1"}
    stale = make_run(mlflow_client, "stale", {**elsewhere, HEARTBEAT_TAG: beat(20)})
    fresh = make_run(mlflow_client, "fresh", {**elsewhere, HEARTBEAT_TAG: beat(2)})
    untagged = make_run(mlflow_client, "from-before-liveness-tags", {})
    closed = reap(mlflow_client, lost_after_s=15 * 60)
    assert [lost.run_id for lost in closed] == [stale]
    assert "no heartbeat from" in mlflow_client.get_run(stale).data.tags["lost.reason"]
    assert mlflow_client.get_run(fresh).info.status == "RUNNING"
    assert mlflow_client.get_run(untagged).info.status == "RUNNING", "no tags: nothing says its process died"


def test_heartbeat_thread_moves_the_tag(mlflow_client) -> None:  # noqa: ANN001
    run_id = make_run(mlflow_client, "beating", {**process_tags(), HEARTBEAT_TAG: "2000-01-01T00:00:00Z"})
    with Heartbeat(mlflow_client, run_id, every_s=0.2) as heartbeat:
        deadline = time.monotonic() + 10
        while heartbeat.beats < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert heartbeat.beats >= 2
    beat = parse_utc(mlflow_client.get_run(run_id).data.tags[HEARTBEAT_TAG])
    assert abs((datetime.now(UTC) - beat).total_seconds()) < 120  # it moved from 2000 to now (a loaded runner may lag)


@pytest.mark.parametrize(("environ", "message"), [
    ({"GRADREG_HEARTBEAT_S": "0"}, "GRADREG_HEARTBEAT_S='0' is not allowed; it must be a number of seconds > 0"),
    ({"GRADREG_LOST_AFTER_S": "soon"}, "GRADREG_LOST_AFTER_S='soon' is not allowed"),
    ({"GRADREG_HEARTBEAT_S": "60", "GRADREG_LOST_AFTER_S": "90"}, "at least twice GRADREG_HEARTBEAT_S=60"),
    ({"GRADREG_REAP": "maybe"}, "GRADREG_REAP='maybe' is not allowed; it must be 1 or 0"),
])
def test_bad_liveness_settings_are_named(environ: dict, message: str) -> None:
    with pytest.raises(ValueError, match="GRADREG_") as err:
        liveness_settings(environ)
    assert message in str(err.value)


def test_liveness_defaults() -> None:
    assert liveness_settings({}) == (60.0, 900.0, True)
    assert liveness_settings({"GRADREG_REAP": "0", "GRADREG_HEARTBEAT_S": "5"}) == (5.0, 900.0, False)


@pytest.mark.slow  # a run SIGKILLed mid-training, then another
def test_a_sigkilled_run_is_closed_by_the_next_start(run_cli, mlflow_client, mlflow_store, tmp_path, data_dir) -> None:
    cmd = [sys.executable, "-m", "src.train", f"paths.log_dir={tmp_path / 'outputs'}", f"paths.data_dir={data_dir}",
           *RUN, "trainer.max_steps=100000"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_store, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        killed = wait_for_steps(mlflow_client, proc, count=3)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        proc.kill()
    run = mlflow_client.get_run(killed)
    assert run.info.status == "RUNNING", "SIGKILL runs no cleanup: only the reaper can close it"
    assert (run.data.tags["host"], run.data.tags["pid"]) == (hostname(), str(proc.pid))

    assert run_cli("data=synthetic", "data.num_samples=64", "trainer.max_steps=2", "trainer.limit_val_batches=1",
                   "trainer.limit_test_batches=1", "trainer.enable_progress_bar=false") == 0
    run = mlflow_client.get_run(killed)
    assert (run.info.status, run.data.tags["outcome"]) == ("KILLED", "lost")
    assert f"process {proc.pid} on {hostname()} is gone" in run.data.tags["lost.reason"]
    assert len(mlflow_client.get_metric_history(killed, "train/loss")) >= 3, "what it logged stays readable"
