"""The report reads a run's metric on its current trajectory: a run resumed from a checkpoint older than its last
logged step (killed without its clean stop) logged those steps again, and the first pass's points from there on
are dropped. Shown on a pair in a real store: a run resumed from its last step (a clean stop) keeps every point."""

from __future__ import annotations

from typing import Any

from mlflow.entities import Metric

from src.report.records import metric_history


def log(client: Any, run_id: str, points: list[tuple[int, float]], at_ms: int) -> None:
    """One process's rows of `train/loss`: one batch, as the logger's writer sends them (one timestamp)."""
    client.log_batch(run_id, metrics=[Metric("train/loss", v, at_ms, s) for s, v in points])


def test_a_restart_from_an_older_checkpoint_supersedes_the_points_it_trained_again(mlflow_client: Any) -> None:
    run = mlflow_client.create_run(mlflow_client.create_experiment("trajectory")).info.run_id
    log(mlflow_client, run, [(0, 2.0), (10, 1.5), (20, 1.0), (30, 0.9)], at_ms=1_000)  # killed at 30; ckpt at 10
    log(mlflow_client, run, [(20, 1.1), (30, 1.05), (40, 0.8)], at_ms=2_000)  # the resume from step 10
    assert metric_history(mlflow_client, run, "train/loss") == [(0, 2.0), (10, 1.5), (20, 1.1), (30, 1.05),
                                                                 (40, 0.8)]


def test_a_resume_from_the_last_step_keeps_every_point(mlflow_client: Any) -> None:
    run = mlflow_client.create_run(mlflow_client.create_experiment("trajectory")).info.run_id
    log(mlflow_client, run, [(0, 2.0), (10, 1.5)], at_ms=1_000)  # a clean stop: last.ckpt at the last step
    log(mlflow_client, run, [(20, 1.0), (30, 0.9)], at_ms=2_000)
    log(mlflow_client, run, [(30, 0.95)], at_ms=3_000)  # a second value at the same step (no step went back)
    assert metric_history(mlflow_client, run, "train/loss") == [(0, 2.0), (10, 1.5), (20, 1.0), (30, 0.9),
                                                                 (30, 0.95)]
