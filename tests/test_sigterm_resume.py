"""A job killed with SIGTERM mid-training ends KILLED with a checkpoint; `resume=<run_id>` and then
`ckpt_path=<file>` continue the *same* MLflow run, and `train/loss` has every step exactly once."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.signalled_runs import RUN, signal_after_steps


def loss_steps(mlflow_client, run_id: str) -> list[int]:  # noqa: ANN001
    return sorted(m.step for m in mlflow_client.get_metric_history(run_id, "train/loss"))


@pytest.mark.slow  # three runs, one stopped by SIGTERM
def test_sigterm_then_resume_continues_the_same_run(run_cli, mlflow_client, mlflow_store, tmp_path, data_dir) -> None:
    run_id, status, out = signal_after_steps(mlflow_client, mlflow_store, tmp_path, data_dir, RUN, 5, signal.SIGTERM)
    assert status == 128 + signal.SIGTERM, out[-3000:]
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
