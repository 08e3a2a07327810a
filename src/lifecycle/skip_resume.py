"""`resume=<run_id> skip_bad_batches=true`: go on past the examples the run's forensics report named.

Where it starts: the newest checkpoint in the run's checkpoint folder whose weights are finite and
whose `global_step` is at most the report's step (the failing step not yet trained) — usually the
best-by-validation one, since `last.ckpt` was rewritten when the diverged run stopped. What it leaves
out: the report's `skip_indices` (source indices, `src/training/data/skip.py`), together with any
left out by earlier skips of the same run. The run's tags record it: `skip.indices` (every index
left out so far, comma-separated), `skip.count`, `skip.checkpoint`, `skip.report_step`. Every later
resume of the run keeps leaving them out (`skip.indices` is read at each resume), so the data does
not change back. `skip_bad_batches` itself is a control key, like `resume`: never carried over.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from src.lifecycle.resume import CHECKPOINT_DIR_TAG, ResumeError, ResumePlan

if TYPE_CHECKING:
    from src.lifecycle.run_context import Run

log = logging.getLogger(__name__)

REPORT = "forensics/report.json"
INDICES_TAG = "skip.indices"


@dataclass(frozen=True)
class Skip:
    indices: tuple[int, ...]  # every source index left out (earlier skips' included)
    tags: dict[str, str]  # to set on the run when this process owns it (empty: nothing new)


def tagged_indices(run: Any) -> list[int]:
    value = run.data.tags.get(INDICES_TAG, "")
    return [int(i) for i in value.split(",") if i.strip()]


def read_report(mlflow_client: Any, run_id: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = mlflow_client.download_artifacts(run_id, REPORT, tmp)
        except Exception:  # noqa: BLE001 - the store's own error types vary
            raise ResumeError(f"resume={run_id!r} skip_bad_batches=true: the run has no {REPORT} (no nonfinite or "
                              "divergence event was replayed, or monitor.forensics=false). The run was not changed.") \
                from None
        return json.loads(Path(local).read_text())


def finite_checkpoint_step(path: Path, run_id: str | None = None) -> int | None:
    """The checkpoint's `global_step` when its weights are all finite, else None (unreadable, or of a run
    other than `run_id`, too)."""
    import torch

    from src.lifecycle.checkpoint_io import try_load
    from src.lifecycle.checkpoint_owner import checkpoint_run_id

    ckpt, _ = try_load(path, "cpu", mmap=True)
    if ckpt is None or run_id is not None and checkpoint_run_id(ckpt) not in (None, run_id):
        return None
    weights = [t for t in ckpt.get("state_dict", {}).values() if isinstance(t, torch.Tensor) and t.is_floating_point()]
    return int(ckpt.get("global_step", 0)) if all(bool(torch.isfinite(t).all()) for t in weights) else None


def last_good_checkpoint(folder: Path, before_step: int, run_id: str | None = None) -> tuple[Path, int] | None:
    """The newest checkpoint in `folder` of run `run_id` with finite weights and `global_step <= before_step`."""
    found = [(step, path) for path in sorted(folder.glob("*.ckpt"))
             if (step := finite_checkpoint_step(path, run_id)) is not None and step <= before_step]
    if not found:
        return None
    step, path = max(found, key=lambda f: (f[0], f[1].name != "last.ckpt"))
    return path, step


def plan_skip(cfg: DictConfig, mlflow_client: Any, plan: ResumePlan) -> tuple[ResumePlan, Skip | None]:
    """The resume plan (a good checkpoint instead of `last.ckpt` when skipping) and what to leave out."""
    if not plan.run_id:
        return plan, None
    run = mlflow_client.get_run(plan.run_id)
    earlier = tagged_indices(run)
    if not cfg.get("skip_bad_batches"):
        return plan, (Skip(tuple(earlier), {}) if earlier else None)
    report = read_report(mlflow_client, plan.run_id)
    new = [int(i) for i in report.get("skip_indices") or []]
    setting = f"resume={plan.run_id!r} skip_bad_batches=true"
    if not new:
        raise ResumeError(f"{setting}: {REPORT} names no examples to leave out ({report.get('note')}). "
                          "The run was not changed.")
    step = int(report["step"])
    good = last_good_checkpoint(Path(run.data.tags[CHECKPOINT_DIR_TAG]), step, plan.run_id)
    if good is None:
        raise ResumeError(f"{setting}: no checkpoint of the run from before step {step} has finite weights, so "
                          "there is nothing good to resume from; start a new run. The run was not changed.")
    indices = tuple(sorted(set(earlier) | set(new)))
    tags = {INDICES_TAG: ",".join(map(str, indices)), "skip.count": str(len(indices)),
            "skip.checkpoint": f"{good[0]} (step {good[1]})", "skip.report_step": str(step)}
    return ResumePlan(ckpt_path=str(good[0]), run_id=plan.run_id), Skip(indices, tags)


def record_skip(run: Run, skip: Skip | None) -> None:
    """Tag the run with what this resume leaves out (by the process that owns the run), and say it."""
    if skip is None or not skip.tags or not run.owner:
        return
    for key, value in skip.tags.items():
        run.client.set_tag(run.run_id, key, value)
    log.info("skip_bad_batches: leaving out examples %s, from %s", skip.tags[INDICES_TAG], skip.tags["skip.checkpoint"])
