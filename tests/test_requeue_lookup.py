"""A requeued SLURM job finds the run its earlier attempt opened (src/lifecycle/requeue.py), shown on pairs: a
first attempt and a requeued one, a run with its last.ckpt and one without, this job's run and another job's."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from src.lifecycle.requeue import continue_requeued_run


def job_run(mlflow_client, folder: Path, job_id: str, with_checkpoint: bool = True) -> str:  # noqa: ANN001
    """A KILLED run of SLURM job `job_id` whose checkpoint folder is `folder` (with or without last.ckpt)."""
    experiment = mlflow_client.create_experiment(f"e-{job_id}-{folder.name}")
    folder.mkdir(parents=True)
    if with_checkpoint:
        (folder / "last.ckpt").write_bytes(b"checkpoint")
    run = mlflow_client.create_run(experiment, tags={"slurm_job_id": job_id, "checkpoint_dir": str(folder),
                                                     "outcome": "interrupted"})
    mlflow_client.set_terminated(run.info.run_id, "KILLED")
    return run.info.run_id


@pytest.fixture
def slurm_job(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SLURM_JOB_ID", "41")


def test_a_requeued_job_resumes_its_own_run_and_a_first_attempt_does_not(
    mlflow_client, slurm_job, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: ANN001
) -> None:
    job_run(mlflow_client, tmp_path / "other", "40")  # another job's run, with its checkpoint
    own = job_run(mlflow_client, tmp_path / "own", "41")
    cfg = OmegaConf.create({"resume": None, "ckpt_path": None})
    monkeypatch.setenv("SLURM_RESTART_COUNT", "0")
    assert continue_requeued_run(cfg.copy()).resume is None, "a first attempt starts its own run"
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    assert continue_requeued_run(cfg.copy()).resume == own, "the requeued attempt continues its own run"
    typed = OmegaConf.create({"resume": "abc", "ckpt_path": None})
    assert continue_requeued_run(typed).resume == "abc", "a resume the user asked for wins"


def test_a_requeued_job_whose_run_left_no_checkpoint_starts_a_new_run(
    mlflow_client, slurm_job, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: ANN001
) -> None:
    monkeypatch.setenv("SLURM_RESTART_COUNT", "2")
    cfg = OmegaConf.create({"resume": None, "ckpt_path": None})
    assert continue_requeued_run(cfg.copy()).resume is None, "no run of this job yet"
    job_run(mlflow_client, tmp_path / "own", "41", with_checkpoint=False)
    assert continue_requeued_run(cfg.copy()).resume is None, "its run has no last.ckpt to continue from"
