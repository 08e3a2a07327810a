"""The demos fire the detectors they were built for, and the default LeNet-5 run stays silent, verdict `healthy`."""

from __future__ import annotations

import pytest

from src.monitor.detectors import KINDS
from tests.mlflow_reads import only_run, run_events


def run_and_events(client):
    run = only_run(client)
    return run, run_events(client, run.info.run_id)


def test_vanishing_demo_logs_a_vanishing_event(run_cli, mlflow_client) -> None:
    assert run_cli("experiment=vanishing_demo", "trainer.enable_progress_bar=false") == 0
    run, events = run_and_events(mlflow_client)
    assert events[0]["kind"] == "vanishing" and run.data.tags["health.verdict"] == "vanishing"
    assert run.data.metrics["events/vanishing"] >= 1
    assert run.data.tags["outcome"] == "completed"  # vanishing is recorded; it does not end the run
    assert run.data.metrics["grad/first_last_ratio"] < 1e-12  # relative gradients, first layer over last


def test_exploding_demo_logs_nonfinite_or_exploding_and_stops(run_cli, mlflow_client) -> None:
    assert run_cli("experiment=exploding_demo", "trainer.enable_progress_bar=false") == 0
    run, events = run_and_events(mlflow_client)
    assert {e["kind"] for e in events} & {"nonfinite", "exploding"}
    assert run.data.tags["health.verdict"] in ("nonfinite", "exploding")
    assert run.info.status == "FINISHED" and run.data.tags["outcome"] == "diverged"
    assert max(m.step for m in mlflow_client.get_metric_history(run.info.run_id, "grad/nonfinite")) < 10  # stopped


DEFAULT_SHORT = ["trainer.max_epochs=2", "trainer.limit_train_batches=40", "trainer.limit_val_batches=2",
                 "trainer.limit_test_batches=2", "trainer.enable_progress_bar=false"]


@pytest.mark.parametrize("overrides", [pytest.param(DEFAULT_SHORT, id="2x40-steps"),
                                       pytest.param(["trainer.enable_progress_bar=false"], id="full-15-epochs",
                                                    marks=pytest.mark.slow)])
def test_default_lenet5_run_logs_no_event(run_cli, mlflow_client, overrides: list[str]) -> None:
    """`python -m src.train` (LeNet-5, tanh, SGD, mnist5k): the default limits must never fire on it."""
    assert run_cli(*overrides) == 0
    run, events = run_and_events(mlflow_client)
    assert events == []
    assert run.data.tags["health.events"] == "none" and run.data.tags["outcome"] == "completed"
    assert run.data.tags["health.verdict"] == "healthy"
    assert not [k for k in run.data.metrics if k.startswith("events/")]  # no empty event charts
    assert all(f"events/{k}" not in run.data.metrics for k in KINDS)
    for key in ("signal/first_last_ratio", "saturated/00.features.0", "sharpness/lambda_max", "sharpness/stability"):
        assert key in run.data.metrics, key  # the instruments at their default schedules (tanh: no ReLU, no dead/)
    images = [a.path for a in mlflow_client.list_artifacts(run.info.run_id, "images")
              if a.path.startswith("images/gradient_flow+step+") and not a.path.endswith("compressed.webp")]
    assert 2 <= len(images) <= 8, images  # a handful of gradient-flow step images, not one per flush
