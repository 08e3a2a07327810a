"""What a sweep's parent run says about its jobs: the tally of their outcomes and the parent's status.

Status rule (the parent is a finding about the sweep, like a job's status is about the job):

- `FINISHED` when every job ended: `completed` or `diverged` (divergence is a result, not a crash);
- `KILLED` when a job was `interrupted` (SIGINT/SIGTERM) or `lost` (its process vanished);
- `FAILED` otherwise: a job `failed`, never created its run (`no_run`: e.g. a bad setting), never
  started (`not_started`: the launcher stopped first) or is still `running` when the parent closes.

The tally is recounted whenever the truth changes after the parent closed: when the reaper closes
one of its jobs, and when a job that was resumed ends (`retally_closed_parent`).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from src.tracking.client import log_batch, search_all_runs

ENDED = ("completed", "diverged")
STOPPED = ("interrupted", "lost")
OUTCOME_OF_STATUS = {"FINISHED": "completed", "KILLED": "interrupted", "FAILED": "failed"}  # a closed parent's
PLANNED_TAG, STARTED_TAG = "sweep_planned_jobs", "sweep_started_jobs"


def summarize(outcomes: Counter[str], jobs: int) -> tuple[str, str]:
    """(`sweep_outcomes` tag, terminal status) from the jobs' outcomes (see the module docstring)."""
    text = " ".join(f"{k}={v}" for k, v in sorted(outcomes.items()) if v) or "none"
    if jobs and sum(outcomes.get(k, 0) for k in ENDED) == jobs:
        return text, "FINISHED"
    return text, "KILLED" if any(outcomes.get(k) for k in STOPPED) else "FAILED"


def child_runs(mlflow_client: Any, parent_run_id: str) -> list[Any]:
    """Every run nested under `parent_run_id`, in any experiment of the store."""
    return search_all_runs(mlflow_client, f"tags.`mlflow.parentRunId` = '{parent_run_id}'")


def job_dirs(sweep_dir: Path) -> list[Path]:
    """Job folders Hydra created (`hydra.sweep.subdir` = job number): jobs that started."""
    return [p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()] if sweep_dir.is_dir() else []


def tally(mlflow_client: Any, parent_run_id: str, planned: int = 0, started: int = 0) -> tuple[int, int, Counter[str]]:
    """(jobs, started, outcomes) of a sweep: its children's outcomes plus the jobs that have no run."""
    children = child_runs(mlflow_client, parent_run_id)
    outcomes = Counter(run.data.tags.get("outcome") or run.info.status.lower() for run in children)
    started = max(started, len(children))
    jobs = max(planned, started)
    outcomes["no_run"] += started - len(children)  # started, but failed before its run existed
    outcomes["not_started"] += jobs - started  # the launcher stopped before it ran them
    return jobs, started, outcomes


def record_tally(mlflow_client: Any, parent_run_id: str, jobs: int, started: int, outcomes: Counter[str]) -> str:
    """Write the tally tags and the terminal status on the parent; return that status."""
    text, status = summarize(outcomes, jobs)
    log_batch(mlflow_client, parent_run_id, tags={
        "sweep_jobs": jobs, STARTED_TAG: started, "sweep_outcomes": text,
        "sweep_all_completed": str(status == "FINISHED").lower(),
        "outcome": OUTCOME_OF_STATUS[status],  # as on every closed run, for the runs table's outcome column
    })
    mlflow_client.set_terminated(parent_run_id, status)
    return status


def retally_closed_parent(mlflow_client: Any, parent_run_id: str) -> str | None:
    """Recount a parent that has already closed (a job of it was reaped or resumed); None if it is open."""
    parent = mlflow_client.get_run(parent_run_id)
    if parent.info.status == "RUNNING" or parent.info.lifecycle_stage != "active":
        return None  # its own sweep process counts at its end
    tags = parent.data.tags
    sweep_dir = Path(tags.get("sweep_dir", ""))
    started = max(int(tags.get(STARTED_TAG, 0) or 0), len(job_dirs(sweep_dir)) if tags.get("sweep_dir") else 0)
    planned = max(int(tags.get(PLANNED_TAG, 0) or 0), int(tags.get("sweep_jobs", 0) or 0))
    jobs, started, outcomes = tally(mlflow_client, parent_run_id, planned, started)
    return record_tally(mlflow_client, parent_run_id, jobs, started, outcomes)
