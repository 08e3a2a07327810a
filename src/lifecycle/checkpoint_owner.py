"""Which run a checkpoint belongs to, and the one folder where a run keeps its checkpoints.

Every checkpoint carries the id of the MLflow run that wrote it (`RunIdentity` in
`src/lifecycle/resume.py`, under `checkpoint["gradreg"]["mlflow_run_id"]`). A resume compares that
id with the run it continues and refuses a checkpoint of another run (two runs that shared a
`hydra.run.dir` once wrote into one folder, and `last.ckpt` was the other run's).

A run keeps one checkpoint folder for its whole life (`run_checkpoint_folder`):
- a resumed run writes into the folder its `checkpoint_dir` tag names, so the tag is never
  re-pointed at a new, empty folder and every `last.ckpt` of the run is the same file;
- a new run writes into the configured folder, or into `<folder>/<run id>` when the configured
  one already holds checkpoints (of another run), so it never overwrites them nor writes
  `last-v1.ckpt` beside them.
Hidden `.<name>.partial` files (a save killed mid-write, `src/lifecycle/checkpoint_io.py`) are
removed from the run's folder when the run is claimed by its one process.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CHECKPOINT_KEY = "gradreg"  # our entry in Lightning's checkpoint dict


def checkpoint_run_id(ckpt: dict[str, Any]) -> str | None:
    """The MLflow run id a loaded checkpoint carries (None: written outside this project)."""
    return (ckpt.get(CHECKPOINT_KEY) or {}).get("mlflow_run_id")


def newest_checkpoint_of(folder: Path, run_id: str) -> tuple[Path, int] | None:
    """The newest readable checkpoint in `folder` written by `run_id`, and its global step."""
    from src.lifecycle.checkpoint_io import PARTIAL_PREFIX, try_load

    found = []
    for path in folder.glob("*.ckpt") if folder.is_dir() else []:
        if path.name.startswith(PARTIAL_PREFIX):
            continue
        ckpt, _ = try_load(path)
        if ckpt is not None and checkpoint_run_id(ckpt) == run_id:
            found.append((int(ckpt.get("global_step", 0)), path.stat().st_mtime, path))
    if not found:
        return None
    step, _, path = max(found)
    return path, step


def foreign_checkpoint_message(setting: str, path: Path, owner: str, run_id: str) -> str:
    """Why a checkpoint of run `owner` cannot continue run `run_id`, and what can."""
    own = newest_checkpoint_of(path.parent, run_id)
    where = (f"The newest checkpoint of run {run_id} there is {own[0]} (step {own[1]}): continue the run from it "
             f"with ckpt_path={own[0]}" if own else f"No checkpoint of run {run_id} is left in {path.parent}; "
             "start a new run")
    return (f"{setting}: {path} is a checkpoint of run {owner}, not of run {run_id} (two runs wrote into one "
            f"checkpoint folder). {where}. The run was not changed.")


def run_checkpoint_folder(configured: Path, run_id: str, tagged: str | None) -> Path:
    """Where run `run_id` writes its checkpoints (see the module docstring)."""
    if tagged:
        return Path(tagged)
    from src.lifecycle.checkpoint_io import PARTIAL_PREFIX

    if configured.is_dir() and any(not p.name.startswith(PARTIAL_PREFIX) for p in configured.glob("*.ckpt")):
        folder = configured / run_id
        log.info("%s already holds checkpoints of another run; this run's go to %s", configured, folder)
        return folder
    return configured


def remove_partial_files(folder: Path) -> list[Path]:
    """Delete the `.<name>.partial` files a killed save left in the run's folder; return them."""
    from src.lifecycle.checkpoint_io import PARTIAL_PREFIX, PARTIAL_SUFFIX

    removed = []
    for path in folder.glob(f"{PARTIAL_PREFIX}*{PARTIAL_SUFFIX}") if folder.is_dir() else []:
        path.unlink(missing_ok=True)
        removed.append(path)
    if removed:
        log.info("Removed %d partial checkpoint file(s) a stopped save left in %s", len(removed), folder)
    return removed
