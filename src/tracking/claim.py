"""One process per run: continuing a run starts with an atomic claim in the store.

Two `resume=<id>` started together both read the run before either marks it RUNNING, so a check of
its status cannot keep the second out. The claim is a compare-and-set the store itself decides: the
param `lifecycle.claim.<n>` (n = the attempt, 1 for the first resume) logged with a token naming this
process (`host|pid|pid_start|UTC time|nonce`). MLflow refuses a param logged again with another
value, and its stores decide that by the params table's primary key (run, key) inside one
transaction, on sqlite and on the PostgreSQL-backed server alike: of two racers for attempt n
exactly one insert commits; the other gets MLflow's refusal, reads the winner's token back and
stops (`RunClaimed`, exit status 2) naming the run and the winner's host and pid. Nothing else is
written before the claim is won, so the liveness tags are written only by the winner.

A racer that reads the run after the winner's claim aims at attempt n+1; it is refused too, since
the newest claim is held: its process lives (same host: by pid and start time; another host: by
its heartbeat, `GRADREG_LOST_AFTER_S`) and has not released it. `finish_run` releases the newest
claim (tag `lifecycle.claim_released`) after the run's terminal status is set, so the next resume
may begin at once, from any host.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from src.settings import UserError
from src.tracking.outcome import CLAIM_PREFIX, RELEASED_TAG, claims

__all__ = ["CLAIM_PREFIX", "RELEASED_TAG", "RunClaimed", "claim_run", "claims"]


class RunClaimed(UserError):
    """The run is driven by another live process; this one changed nothing."""


def make_token(process: dict[str, str]) -> str:
    """This process's claim token: `host|pid|pid_start|UTC time|nonce` (the nonce tells two claims apart)."""
    from src.tracking.liveness import utc_now

    return "|".join((process.get("host", ""), process.get("pid", ""), process.get("pid_start", ""), utc_now(),
                     uuid.uuid4().hex[:12]))


def holder(token: str) -> dict[str, str]:
    host, pid, pid_start, since, _ = ([*token.split("|"), "", "", "", "", ""])[:5]
    return {"host": host, "pid": pid, "pid_start": pid_start, "since": since}


def describe(token: str) -> str:
    who = holder(token)
    return f"pid {who['pid'] or '?'} on {who['host'] or '?'}, claimed at {who['since'] or '?'}"


def held_by_live_process(run: Any, token: str, lost_after_s: float) -> bool:
    """Does the process that made this claim still live (or may it, for a process on another host)?"""
    from src.tracking.liveness import HEARTBEAT_TAG
    from src.tracking.reaper import lost_reason

    who = holder(token)
    tags = {"host": who["host"], "pid": who["pid"], "pid_start": who["pid_start"], HEARTBEAT_TAG: who["since"]}
    if run.data.tags.get("pid") == who["pid"] and run.data.tags.get("host") == who["host"]:
        tags[HEARTBEAT_TAG] = max(who["since"], run.data.tags.get(HEARTBEAT_TAG, ""))  # ISO strings order by time
    return lost_reason(tags, run.info.start_time or 0, lost_after_s, datetime.now(UTC)) is None


def refuse_if_held(run: Any, setting: str, lost_after_s: float) -> int:
    """The newest claim's attempt number (0: none); RunClaimed when a live process holds it."""
    found = claims(run)
    if not found:
        return 0
    newest = max(found)
    released = run.data.tags.get(RELEASED_TAG) == str(newest)
    if not released and held_by_live_process(run, found[newest], lost_after_s):
        raise RunClaimed(f"{setting}: run {run.info.run_id} is being continued by another process "
                         f"({describe(found[newest])}); one run is driven by one process. Wait until it ends or "
                         "stop it, then resume. The run was not changed.")
    return newest


def claim_run(mlflow_client: Any, run_id: str, process: dict[str, str], setting: str, lost_after_s: float) -> int:
    """Claim the run for this process (see the module docstring); return the attempt number won."""
    from mlflow.exceptions import MlflowException

    attempt = refuse_if_held(mlflow_client.get_run(run_id), setting, lost_after_s) + 1
    key, token = f"{CLAIM_PREFIX}{attempt}", make_token(process)
    try:
        mlflow_client.log_param(run_id, key, token)
    except MlflowException:
        winner = mlflow_client.get_run(run_id).data.params.get(key)
        if winner == token:
            return attempt  # a retried write that had committed
        if winner is None:
            raise
        raise RunClaimed(f"{setting}: run {run_id} was claimed a moment ago by another process "
                         f"({describe(winner)}); one run is driven by one process. The run was not changed.") from None
    return attempt
