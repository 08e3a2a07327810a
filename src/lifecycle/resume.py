"""Resume training *and* its MLflow run: from `ckpt_path=<file>` or from `resume=<run_id>`.

Every checkpoint carries the id of the run that wrote it (`RunIdentity`), and every run carries
its checkpoint folder as the tag `checkpoint_dir`, so either handle finds the other:
- `resume=<run_id>`: `<checkpoint_dir of that run>/last.ckpt`, same run;
- `ckpt_path=<file>`: the run id stored in the file; when that run is not in this store the
  training still resumes from the file, in a new run tagged `resumed_from`.
Lightning restores the global step, loops, optimizer and callback states from the file, so the
metrics continue at the right steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig

CHECKPOINT_KEY = "gradreg"  # our entry in Lightning's checkpoint dict
CHECKPOINT_DIR_TAG = "checkpoint_dir"


class ResumeError(RuntimeError):
    """The run or checkpoint to resume from cannot be found."""


@dataclass(frozen=True)
class ResumePlan:
    ckpt_path: str | None = None  # what trainer.fit restores from
    run_id: str | None = None  # the MLflow run to continue (None: a new run)


class RunIdentity(pl.Callback):
    """Writes the MLflow run id into every checkpoint Lightning saves."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        checkpoint[CHECKPOINT_KEY] = {"mlflow_run_id": self.run_id}


def run_id_in_checkpoint(path: str | Path) -> str | None:
    import torch

    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=False, mmap=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same clear message
        reason = f"{type(err).__name__}: {err}"
        raise ResumeError(f"ckpt_path={str(path)!r} is not a readable checkpoint ({reason})") from None
    return (ckpt.get(CHECKPOINT_KEY) or {}).get("mlflow_run_id") if isinstance(ckpt, dict) else None


def get_run_or_none(mlflow_client, run_id: str) -> Any:  # noqa: ANN001
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client.get_run(run_id)
    except MlflowException:
        return None


def plan_resume(cfg: DictConfig, mlflow_client) -> ResumePlan:  # noqa: ANN001
    """Where training starts from and which run it continues, from `resume` / `ckpt_path`."""
    from src.tracking.redaction import redact_uri

    if cfg.get("resume"):
        run_id = str(cfg.resume)
        run = get_run_or_none(mlflow_client, run_id)
        if run is None:
            store = redact_uri(mlflow_client.tracking_uri)
            raise ResumeError(f"resume={run_id!r}: no such run in the MLflow store {store}")
        folder = run.data.tags.get(CHECKPOINT_DIR_TAG)
        if not folder:
            raise ResumeError(f"resume={run_id!r}: the run has no '{CHECKPOINT_DIR_TAG}' tag, so no checkpoint to find")
        last = Path(folder) / "last.ckpt"
        if not last.is_file():
            raise ResumeError(f"resume={run_id!r}: {last} does not exist (the run saved no last checkpoint)")
        return ResumePlan(ckpt_path=str(last), run_id=run_id)
    if cfg.get("ckpt_path"):
        ckpt = str(Path(cfg.ckpt_path).absolute())
        run_id = run_id_in_checkpoint(ckpt)
        if run_id and get_run_or_none(mlflow_client, run_id) is not None:
            return ResumePlan(ckpt_path=ckpt, run_id=run_id)
        print(f"ckpt_path={ckpt}: its run {run_id or '(unknown)'} is not in this store; training resumes in a new run")
        return ResumePlan(ckpt_path=ckpt)
    return ResumePlan()


def checkpoint_dir(trainer_cfg: DictConfig, callbacks: list[pl.Callback]) -> Path:
    """Where this run's checkpoints (and `last.ckpt`) go: the ModelCheckpoint's folder, else Lightning's default."""
    from pytorch_lightning.callbacks import ModelCheckpoint

    for cb in callbacks:
        if isinstance(cb, ModelCheckpoint) and cb.dirpath:
            return Path(cb.dirpath).absolute()
    return Path(trainer_cfg.get("default_root_dir") or ".").absolute() / "checkpoints"


def record_checkpoint_dir(run: dict[str, Any], folder: Path, plan: ResumePlan) -> None:
    """Tag the run with its (latest) checkpoint folder, and a new run with the file it started from."""
    if not run.get("owner", True):
        return
    tags = {CHECKPOINT_DIR_TAG: str(folder)}
    if plan.ckpt_path and plan.run_id is None:
        tags["resumed_from"] = plan.ckpt_path
    for key, value in tags.items():
        run["client"].set_tag(run["run_id"], key, value)
