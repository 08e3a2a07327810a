"""A study run's time comes from its own timestamps: the time it trained, a pause before a resume left out, summed
per block over the newest run of each job."""

from __future__ import annotations

import pytest
from mlflow.entities import Metric, Param, RunTag

from src.report import run_time

T0 = 1_800_000_000_000  # ms since the epoch


def log_timed_run(client, overrides: str, seed: str, stamps_s: list[float]) -> str:
    """A run of a study job whose `train/loss` rows carry the given times (s after T0); start and end at the ends."""
    exp = client.get_experiment_by_name("study2")
    exp_id = exp.experiment_id if exp else client.create_experiment("study2")
    run = client.create_run(exp_id, start_time=T0 + int(1000 * stamps_s[0]))
    metrics = [Metric("train/loss", 1.0, T0 + int(1000 * t), 10 * i) for i, t in enumerate(stamps_s[1:-1])]
    client.log_batch(run.info.run_id, metrics=metrics, params=[Param("seed", seed)],
                     tags=[RunTag("overrides", overrides)])
    client.set_terminated(run.info.run_id, end_time=T0 + int(1000 * stamps_s[-1]))
    return run.info.run_id


def test_a_pause_longer_than_the_gap_is_not_counted_as_training() -> None:
    steady = [0, 1000, 2000, 3000]  # ms: three 1-s intervals
    assert run_time.active_seconds(steady) == pytest.approx(3.0)
    paused = [0, 1000, 1000 + 3_600_000, 1000 + 3_601_000]  # an hour between a stop and its resume
    assert run_time.active_seconds(paused) == pytest.approx(2.0)
    assert run_time.active_seconds(paused, gap_s=7200) == pytest.approx(3602.0)
    assert run_time.active_seconds([5]) == 0.0


def test_a_blocks_time_sums_the_newest_run_of_each_job(mlflow_client) -> None:
    job = "experiment=study2_late_dying +study/arm=none seed=0"
    log_timed_run(mlflow_client, job, "0", [0, 5, 10, 15, 20])  # an older run of the same job: not counted
    log_timed_run(mlflow_client, job, "0", [100, 130, 160, 160 + 3600, 160 + 3660])  # 60 s + a pause + 60 s
    log_timed_run(mlflow_client, "experiment=study2_late_dying +study/arm=l2_3e-3 seed=0", "0", [200, 230, 260])
    log_timed_run(mlflow_client, "experiment=study2_long_l2_sgd +study/arm=l2_1e-3 seed=0", "0",
                  [300, 300 + 600, 300 + 1200])
    times = run_time.block_times(mlflow_client, "study2")
    assert times["blocks"]["late_dying"] == {"runs": 2, "run_minutes": 3.0}  # (120 s + 60 s) / 60
    assert times["blocks"]["long_l2_sgd"] == {"runs": 1, "run_minutes": 20.0}
    assert times["run_minutes"] == 23.0 and times["two_jobs_minutes"] == 11.5
