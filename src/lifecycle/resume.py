"""Resume training *and* its MLflow run: from `ckpt_path=<file>` or from `resume=<run_id>`.

Every checkpoint carries the id of the run that wrote it (`RunIdentity`), and every run carries
its checkpoint folder as the tag `checkpoint_dir`, so either handle finds the other:
- `resume=<run_id>`: `<checkpoint_dir of that run>/last.ckpt`, same run;
- `ckpt_path=<file>`: the run id stored in the file; when that run is not in this store the
  training still resumes from the file, in a new run tagged `resumed_from`.
Lightning restores the global step, loops, optimizer and callback states from the file, so the
metrics continue at the right steps.

Nothing touches the run before the resume is known to work: `plan_resume` refuses a run that is
still RUNNING in a live process and a checkpoint that is missing or unreadable (naming the last
good one beside it), and `check_checkpoint_fits` refuses one whose weights do not fit the module
the composed config builds. `resume=<run_id>` alone restores the run's overrides
(`src/lifecycle/resume_overrides.py`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl
from omegaconf import DictConfig

from src.lifecycle.checkpoint_owner import CHECKPOINT_KEY, checkpoint_run_id, foreign_checkpoint_message
from src.lifecycle.ranks import is_relaunched_rank
from src.settings import UserError

if TYPE_CHECKING:
    from src.lifecycle.run_context import Run

log = logging.getLogger(__name__)

CHECKPOINT_DIR_TAG = "checkpoint_dir"


class ResumeError(UserError, RuntimeError):
    """The run or checkpoint to resume from cannot be found."""


@dataclass(frozen=True)
class ResumePlan:
    ckpt_path: str | None = None  # what trainer.fit restores from
    run_id: str | None = None  # the MLflow run to continue (None: a new run)
    nothing_to_train: str | None = None  # why the resume would train no step (then the run is left as it is)


class RunIdentity(pl.Callback):
    """Writes the MLflow run id into every checkpoint Lightning saves."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        checkpoint[CHECKPOINT_KEY] = {"mlflow_run_id": self.run_id}


def readable_checkpoint(path: str | Path, setting: str) -> dict:
    """The checkpoint at `path`, or ResumeError naming the setting, the file, why, and the last good one."""
    from src.lifecycle.checkpoint_io import CheckpointError, read_checkpoint

    try:
        return read_checkpoint(path, mmap=True)  # tensors mapped, not read: cheap even for ResNet-152
    except CheckpointError as err:
        raise ResumeError(f"{setting}: {err} The run was not changed.") from None


def nothing_to_train(trainer_cfg: Any, ckpt: dict) -> str | None:
    """Why `trainer.fit` from `ckpt` would train no step under these trainer settings, else None.

    Lightning's own stop rule: the global step reached `max_steps`, or the finished epochs reached
    `max_epochs` (1000 when both are unset), unless `min_steps`/`min_epochs` still ask for more.
    """
    step = int(ckpt.get("global_step", 0))
    try:
        epochs = int(ckpt["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"])
    except (KeyError, TypeError, ValueError):
        epochs = int(ckpt.get("epoch", 0))
    max_steps = trainer_cfg.get("max_steps", -1)
    max_epochs = trainer_cfg.get("max_epochs", None)
    if max_epochs is None and max_steps in (None, -1):
        max_epochs = 1000
    if step < (trainer_cfg.get("min_steps") or 0) or epochs < (trainer_cfg.get("min_epochs") or 0):
        return None
    if max_steps not in (None, -1) and step >= max_steps:
        return f"its checkpoint is at step {step} and trainer.max_steps={max_steps}"
    if max_epochs not in (None, -1) and epochs >= max_epochs:
        return f"its checkpoint has {epochs} finished epoch(s) and trainer.max_epochs={max_epochs}"
    return None


def refuse_live_run(run: Any, cfg: DictConfig) -> None:
    """A RUNNING run may be resumed only when its process is gone (else two processes would write it)."""
    from datetime import UTC, datetime

    from src.tracking.reaper import liveness_settings, lost_reason

    if run.info.status != "RUNNING":
        return
    _, lost_after_s, _ = liveness_settings()
    tags = run.data.tags
    if lost_reason(tags, run.info.start_time or 0, lost_after_s, datetime.now(UTC)) is None:
        where = f"pid {tags.get('pid', '?')} on {tags.get('host', '?')}, last heartbeat {tags.get('heartbeat', '?')}"
        raise ResumeError(f"resume={run.info.run_id!r}: the run is still RUNNING ({where}); stop that process "
                          "first, or wait until the reaper closes it. The run was not changed.")


def get_run_or_none(mlflow_client, run_id: str) -> Any:  # noqa: ANN001
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client.get_run(run_id)
    except MlflowException:
        return None


def plan_resume(cfg: DictConfig, mlflow_client) -> ResumePlan:  # noqa: ANN001
    """Where training starts from and which run it continues, from `resume` / `ckpt_path`."""
    from src.tracking.deleted import refuse_deleted_run
    from src.tracking.redaction import redact_uri

    if cfg.get("resume"):
        run_id = str(cfg.resume)
        run = get_run_or_none(mlflow_client, run_id)
        if run is None:
            store = redact_uri(mlflow_client.tracking_uri)
            raise ResumeError(f"resume={run_id!r}: no such run in the MLflow store {store}")
        refuse_deleted_run(run, f"resume={run_id!r}", mlflow_client.tracking_uri)
        refuse_live_run(run, cfg)
        folder = run.data.tags.get(CHECKPOINT_DIR_TAG)
        if not folder:
            raise ResumeError(f"resume={run_id!r}: the run has no '{CHECKPOINT_DIR_TAG}' tag, so no checkpoint to find")
        last = Path(folder) / "last.ckpt"
        ckpt = readable_checkpoint(last, f"resume={run_id!r}")
        owner = checkpoint_run_id(ckpt)
        if owner and owner != run_id:
            raise ResumeError(foreign_checkpoint_message(f"resume={run_id!r}", last, owner, run_id))
        return ResumePlan(ckpt_path=str(last), run_id=run_id, nothing_to_train=nothing_to_train(cfg.trainer, ckpt))
    if cfg.get("ckpt_path"):
        ckpt = str(Path(cfg.ckpt_path).absolute())
        loaded = readable_checkpoint(ckpt, f"ckpt_path={ckpt!r}")
        run_id = checkpoint_run_id(loaded)
        run = get_run_or_none(mlflow_client, run_id) if run_id else None
        if run is not None:
            refuse_deleted_run(run, f"ckpt_path={ckpt!r}", mlflow_client.tracking_uri)
            return ResumePlan(ckpt_path=ckpt, run_id=run_id, nothing_to_train=nothing_to_train(cfg.trainer, loaded))
        if not is_relaunched_rank():  # every DDP rank plans the same; one says it
            log.info("ckpt_path=%s: its run %s is not in this store; training resumes in a new run", ckpt,
                     run_id or "(unknown)")
        return ResumePlan(ckpt_path=ckpt)
    return ResumePlan()


def check_checkpoint_fits(plan: ResumePlan, module: Any) -> None:
    """Refuse, before `fit` and before the run is touched, weights that do not fit `module`.

    Compares the checkpoint's `state_dict` keys and tensor shapes with the module the composed
    config built (a LeNet-5 checkpoint resumed with an MLP config, a changed width, ...).
    """
    if not plan.ckpt_path:
        return
    setting = f"resume={plan.run_id!r}" if plan.run_id else f"ckpt_path={plan.ckpt_path!r}"
    saved = readable_checkpoint(plan.ckpt_path, setting)["state_dict"]
    wanted = module.state_dict()
    missing = sorted(set(wanted) - set(saved))
    unexpected = sorted(set(saved) - set(wanted))
    shapes = sorted(f"{k} {tuple(saved[k].shape)} vs {tuple(wanted[k].shape)}" for k in set(saved) & set(wanted)
                    if tuple(saved[k].shape) != tuple(wanted[k].shape))
    if not (missing or unexpected or shapes):
        return
    problems = [f"{label} ({len(items)}): {', '.join(items[:4])}{', ...' if len(items) > 4 else ''}"
                for label, items in (("missing in the checkpoint", missing), ("not in this model", unexpected),
                                     ("shape checkpoint vs model", shapes)) if items]
    raise ResumeError(f"{setting}: checkpoint {plan.ckpt_path} does not fit the model this config builds "
                      f"({'; '.join(problems)}). Resume with the run's own settings (resume=<run_id> alone "
                      "restores them) or start a new run. The run was not changed.")


def checkpoint_dir(trainer_cfg: DictConfig, callbacks: list[pl.Callback]) -> Path:
    """Where this run's checkpoints (and `last.ckpt`) go: the ModelCheckpoint's folder, else Lightning's default."""
    from pytorch_lightning.callbacks import ModelCheckpoint

    for cb in callbacks:
        if isinstance(cb, ModelCheckpoint) and cb.dirpath:
            return Path(cb.dirpath).absolute()
    return Path(trainer_cfg.get("default_root_dir") or ".").absolute() / "checkpoints"


def use_checkpoint_folder(callbacks: list[pl.Callback], folder: Path) -> None:
    """Make the ModelCheckpoint write into `folder` (the run's own, `src/lifecycle/checkpoint_owner.py`)."""
    from pytorch_lightning.callbacks import ModelCheckpoint

    for cb in callbacks:
        if isinstance(cb, ModelCheckpoint):
            cb.dirpath = str(folder)


def record_checkpoint_dir(run: Run, folder: Path, plan: ResumePlan) -> None:
    """Tag the run with its (latest) checkpoint folder, and a new run with the file it started from."""
    if not run.owner:
        return
    tags = {CHECKPOINT_DIR_TAG: str(folder)}
    if plan.ckpt_path and plan.run_id is None:
        tags["resumed_from"] = plan.ckpt_path
    for key, value in tags.items():
        run.client.set_tag(run.run_id, key, value)
