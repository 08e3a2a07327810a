"""The MLflow status of a run tells how it ended: an exception -> FAILED with the traceback,
Ctrl-C (SIGINT) -> KILLED with `outcome=interrupted` and a last checkpoint to resume from."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.conftest import FAST

TINY = ["data=synthetic", "data.num_samples=96", "sched=none", *FAST]


def only_run(mlflow_client):  # noqa: ANN001, ANN201
    runs = mlflow_client.search_runs([e.experiment_id for e in mlflow_client.search_experiments()])
    assert len(runs) == 1, f"expected exactly one run, found {len(runs)}"
    return runs[0]


@pytest.mark.parametrize(("stage", "expected"), [
    ("train", "RuntimeError: injected failure at step 2"),
    ("test", "RuntimeError: injected failure in test"),
])
def test_exception_ends_run_failed_with_traceback(run_cli, mlflow_client, stage: str, expected: str) -> None:
    code = run_cli(*TINY, "+callbacks.boom._target_=tests.helpers.RaiseAtStep", "+callbacks.boom.step=2",
                   f"+callbacks.boom.stage={stage}")
    assert code == 1
    run = only_run(mlflow_client)
    assert run.info.status == "FAILED"
    assert run.data.tags["outcome"] == "failed"
    traceback_txt = Path(mlflow_client.download_artifacts(run.info.run_id, "traceback.txt")).read_text()
    assert expected in traceback_txt and "Traceback (most recent call last)" in traceback_txt


def test_sigint_stops_at_a_step_boundary_killed_with_last_checkpoint(run_cli, mlflow_client) -> None:
    handler_before = signal.getsignal(signal.SIGINT)  # SIG_IGN when the suite runs in the background
    code = run_cli(*TINY, "data.num_samples=512", "trainer.limit_train_batches=8",
                   "+callbacks.sig._target_=tests.helpers.SignalAtStep", "+callbacks.sig.step=3",
                   f"+callbacks.sig.signum={int(signal.SIGINT)}")
    assert code == 128 + signal.SIGINT
    run = only_run(mlflow_client)
    assert (run.info.status, run.data.tags["outcome"]) == ("KILLED", "interrupted")
    steps = [m.step for m in mlflow_client.get_metric_history(run.info.run_id, "train/loss")]
    assert steps == [0, 1, 2], "the step in flight when the signal came completes; no later step starts"
    last = Path(run.data.tags["checkpoint_dir"]) / "last.ckpt"
    import torch

    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 3
    assert ckpt["gradreg"]["mlflow_run_id"] == run.info.run_id
    assert signal.getsignal(signal.SIGINT) is handler_before, "handlers are restored after the run"


def test_divergence_reported_by_a_callback_ends_finished_diverged(run_cli, mlflow_client) -> None:
    code = run_cli(*TINY, "data.num_samples=512", "+callbacks.health._target_=tests.helpers.DivergeAtStep",
                   "+callbacks.health.step=2", "test=false")
    assert code == 0
    run = only_run(mlflow_client)
    assert (run.info.status, run.data.tags["outcome"]) == ("FINISHED", "diverged")
    assert len(mlflow_client.get_metric_history(run.info.run_id, "train/loss")) == 2
