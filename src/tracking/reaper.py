"""The reaper: a run never stays RUNNING after its process is gone.

SIGKILL, the OOM killer or a lost node end a process without any `finally`, so its MLflow run
would stay RUNNING for ever. The reaper finds such runs from their liveness tags
(`src/tracking/liveness.py`) and closes them KILLED with `outcome=lost`:

- same host (and same boot and pid namespace): lost when the pid is gone, or when it now belongs
  to a process that started at another time (the pid was reused);
- another host, container or boot: lost when the last heartbeat is older than `lost_after_s`
  (the run's start time stands in for a heartbeat never written);
- a RUNNING run without a `host` tag (written before these tags existed) is left alone: nothing
  says whether its process lives.

It costs one search for RUNNING runs (plus one listing of the experiments), so it runs at every
`python -m src.train`, at every sweep start and end, and as `python -m src.reap` (`make reap`).
Settings: GRADREG_HEARTBEAT_S, GRADREG_LOST_AFTER_S, GRADREG_REAP (below).
A sweep parent whose job it closed gets its tally recounted (`src/tracking/sweep_tally.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from src.settings.environment import (  # the liveness settings, checked like every other setting
    DEFAULT_LOST_AFTER_S,
    HEARTBEAT_ENV,
    LOST_AFTER_ENV,
    REAP_ENV,
    liveness_settings,
)
from src.tracking.liveness import (
    HEARTBEAT_TAG,
    HOST_TAG,
    PID_START_TAG,
    PID_TAG,
    hostname,
    parse_utc,
    pid_alive,
    process_space,
    process_start,
    utc_now,
)

log = logging.getLogger(__name__)

RESUME_HINT_TAG = "resume_hint"
__all__ = ["DEFAULT_LOST_AFTER_S", "HEARTBEAT_ENV", "LOST_AFTER_ENV", "REAP_ENV", "liveness_settings", "reap"]


@dataclass(frozen=True)
class LostRun:
    """A RUNNING run whose process is gone, and why the reaper thinks so."""

    run_id: str
    name: str
    reason: str
    is_parent: bool
    parent_run_id: str | None
    seen: tuple[str, ...]  # the liveness tags as the search saw them


def liveness_snapshot(tags: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(tags.get(key, "") for key in (HOST_TAG, PID_TAG, PID_START_TAG, HEARTBEAT_TAG))


def runs_here(tags: Mapping[str, str]) -> bool:
    """Was the run's process started on this host, boot and pid namespace (so its pid can be checked)?"""
    if tags.get(HOST_TAG) != hostname():
        return False
    token, space = tags.get(PID_START_TAG, ""), process_space()
    if not token or not space or token.startswith("psutil:"):
        return True  # no /proc here or there: the host name is all there is to go on
    return token.rsplit(":", 1)[0] == space


def lost_reason(tags: Mapping[str, str], start_time_ms: int, lost_after_s: float, now: datetime) -> str | None:
    """Why this RUNNING run's process is gone, or None when it is (or may be) alive."""
    host = tags.get(HOST_TAG)
    if not host:
        return None
    pid = int(tags.get(PID_TAG) or 0)
    if pid and runs_here(tags):
        started = process_start(pid)
        if started is None or not pid_alive(pid):
            return f"its process {pid} on {host} is gone"
        recorded = tags.get(PID_START_TAG, "")
        if recorded and started and recorded != started:
            return f"pid {pid} on {host} now belongs to another process (started at another time)"
        return None
    beat = parse_utc(tags.get(HEARTBEAT_TAG, "")) or datetime.fromtimestamp(start_time_ms / 1000, UTC)
    age_s = (now - beat).total_seconds()
    if age_s > lost_after_s:
        return f"no heartbeat from {host} for {age_s / 60:.1f} min (limit {lost_after_s / 60:g} min)"
    return None


def find_lost(mlflow_client: Any, lost_after_s: float = DEFAULT_LOST_AFTER_S) -> list[LostRun]:
    """Every RUNNING run of the store whose process is gone (one search)."""
    from src.tracking.client import search_all_runs

    now = datetime.now(UTC)
    lost = []
    for run in search_all_runs(mlflow_client, "attributes.status = 'RUNNING'"):
        tags = run.data.tags
        reason = lost_reason(tags, run.info.start_time or 0, lost_after_s, now)
        if reason:
            lost.append(LostRun(run.info.run_id, run.info.run_name or run.info.run_id, reason,
                                tags.get("sweep_role") == "parent", tags.get("mlflow.parentRunId"),
                                liveness_snapshot(tags)))
    return lost


def close_lost(mlflow_client: Any, lost: LostRun) -> bool:
    """Close one lost run KILLED, `outcome=lost`; False when it changed meanwhile (resumed, or ended)."""
    from src.tracking.client import log_batch
    from src.tracking.outcome import finish_run

    run = mlflow_client.get_run(lost.run_id)  # read again: a resume may have taken it over since the search
    if run.info.status != "RUNNING" or liveness_snapshot(run.data.tags) != lost.seen:
        return False
    tags = {"lost.reason": lost.reason, "lost.closed_at": utc_now(), "lost.closed_by": hostname()}
    if not lost.is_parent:
        tags[RESUME_HINT_TAG] = f"python -m src.train resume={lost.run_id}"
    log_batch(mlflow_client, lost.run_id, tags=tags)
    finish_run(mlflow_client, lost.run_id, "lost")
    return True


def reap(mlflow_client: Any = None, lost_after_s: float = DEFAULT_LOST_AFTER_S, dry_run: bool = False,
         only: Iterable[str] | None = None) -> list[LostRun]:
    """Close every lost run of the store (or only those in `only`); print one line each; return them."""
    from src.tracking.client import client
    from src.tracking.sweep_tally import retally_closed_parent

    mlflow_client = mlflow_client or client()
    wanted = set(only) if only is not None else None
    closed = []
    for lost in find_lost(mlflow_client, lost_after_s):
        if wanted is not None and lost.run_id not in wanted:
            continue
        if not dry_run and not close_lost(mlflow_client, lost):
            continue
        closed.append(lost)
        verb = "would close" if dry_run else "closed"
        hint = "" if lost.is_parent else f" Continue it with: python -m src.train resume={lost.run_id}"
        log.warning("Reaper: run %s (%s) was RUNNING but %s: %s KILLED, outcome=lost.%s", lost.name, lost.run_id,
                    lost.reason, verb, hint)
    if not dry_run:
        for parent in {lost.parent_run_id for lost in closed if lost.parent_run_id}:
            retally_closed_parent(mlflow_client, parent)
    return closed


def reap_at_start(mlflow_client: Any = None) -> list[LostRun]:
    """The reaper as a run or sweep starts, unless GRADREG_REAP=0; never fails the start."""
    _, lost_after_s, enabled = liveness_settings()
    if not enabled:
        return []
    try:
        return reap(mlflow_client, lost_after_s)
    except Exception as err:  # noqa: BLE001 - tidying other runs must not stop this one
        log.warning("Reaper skipped (%s: %s)", type(err).__name__, err)
        return []
