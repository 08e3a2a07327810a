"""The run context: a job's MLflow run whose status always tells how the job ended."""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from omegaconf import DictConfig

from src.tracking.client import client
from src.tracking.runs import finish_run, resume_run, start_run

log = logging.getLogger(__name__)


@dataclass
class Run:
    """The job's MLflow run, as the body of `tracked_run` sees it."""

    client: Any  # the (retrying) MlflowClient on the run's store
    run_id: str
    owner: bool  # False in a DDP rank Lightning re-launched: it attaches to rank 0's run and records nothing
    outcome: Literal["completed", "diverged"] = "completed"  # what the run's status will say if the body returns
    store_stop: Any = None  # the `StoreWriteStop` callback (src/lifecycle/store_write_stop.py), for the closing line


@contextmanager
def tracked_run(
    cfg: DictConfig, choices: Mapping[str, Any], overrides: list[str], resume: tuple[str, str] | None = None
) -> Iterator[Run]:
    """A run whose MLflow status always tells how it ended.

    Yields the `Run` (the body may set its `outcome` to `diverged`).
    `resume=(run_id, ckpt_path)` continues that run instead of creating one. An exception marks the
    run `failed` (traceback as an artifact); SIGINT/SIGTERM or Ctrl-C mark it `interrupted` (KILLED);
    all re-raise, a full disk as `DiskFull` with a one-line message.

    While the run is open it carries this process's liveness tags and a heartbeat thread
    (GRADREG_HEARTBEAT_S), so that the reaper can close it should the process die unseen.
    """
    from src.lifecycle.ranks import RUN_ID_ENV, is_relaunched_rank, shared_run_id

    if is_relaunched_rank():
        yield Run(client(), shared_run_id(), owner=False)
        return
    from src.lifecycle.exits import DiskFull, disk_full_error, disk_full_line
    from src.lifecycle.signals import stop_on_signals
    from src.lifecycle.store_write_stop import stopped_line, store_refused
    from src.tracking.liveness import Heartbeat, process_tags
    from src.tracking.reaper import liveness_settings
    from src.tracking.redaction import redact_uri

    heartbeat_s, _, _ = liveness_settings()
    with stop_on_signals():
        if resume:
            mlflow_client, run_id = resume_run(cfg, overrides, *resume, process=process_tags())
        else:
            mlflow_client, run_id = start_run(cfg, choices, overrides, process=process_tags())
        state = Run(mlflow_client, run_id, owner=True)
        os.environ[RUN_ID_ENV] = run_id  # for the DDP ranks Lightning re-launches from this process
        heartbeat = Heartbeat(mlflow_client, run_id, heartbeat_s).start()
        try:
            yield state
        except BaseException as exc:
            heartbeat.stop()
            closed = close_or_leave(mlflow_client, run_id, exc)
            if not closed or store_refused(exc):  # the store's own fault: one line, the run's state told truly
                store = redact_uri(mlflow_client.tracking_uri)
                raise DiskFull(stopped_line(exc, run_id, store, closed, state.store_stop)) from exc
            full = disk_full_error(exc)
            if full is not None:
                raise DiskFull(disk_full_line(full, run_id, written_places(mlflow_client, run_id))) from exc
            raise
        else:
            heartbeat.stop()
            finish_run(mlflow_client, run_id, state.outcome)
        finally:
            heartbeat.stop()
            os.environ.pop(RUN_ID_ENV, None)
            retally_parent(mlflow_client, run_id)


def written_places(mlflow_client: Any, run_id: str) -> list[str]:
    """Where this run writes files: its artifact root and its checkpoint folder."""
    try:
        run = mlflow_client.get_run(run_id)
    except Exception:  # noqa: BLE001 - only used to word a message
        return []
    return [p for p in (run.info.artifact_uri, run.data.tags.get("checkpoint_dir")) if p]


def close_or_leave(mlflow_client: Any, run_id: str, exc: BaseException) -> bool:
    """`close_after`; False when the store refused the closing write (the run stays RUNNING for the reaper)."""
    try:
        close_after(mlflow_client, run_id, exc)
    except Exception as err:  # noqa: BLE001 - said in the job's one line (store_write_stop.stopped_line)
        log.debug("Run %s could not be closed: %s: %s", run_id, type(err).__name__, err)
        return False
    return True


def close_after(mlflow_client: Any, run_id: str, exc: BaseException) -> None:
    """End the run with the outcome `exc` means: `interrupted` (KILLED) or `failed` (traceback kept)."""
    from src.lifecycle.exits import disk_full_error
    from src.lifecycle.signals import is_interrupt

    if is_interrupt(exc):
        finish_run(mlflow_client, run_id, "interrupted")
        log.warning("Run %s stopped (%s): status KILLED, outcome=interrupted. Continue it with: "
                    "python -m src.train resume=%s", run_id, type(exc).__name__, run_id)
        return
    try:
        mlflow_client.log_text(run_id, traceback.format_exc(), "traceback.txt")
    except Exception as err:  # noqa: BLE001 - a full disk must not keep the run from its FAILED status
        if disk_full_error(err) is None:
            log.warning("Could not store traceback.txt for run %s (%s: %s)", run_id, type(err).__name__, err)
    finally:
        finish_run(mlflow_client, run_id, "failed")


def retally_parent(mlflow_client: Any, run_id: str) -> None:
    """A sweep job that ends after its parent closed (it was resumed) updates the parent's tally."""
    from src.tracking.sweep_tally import retally_closed_parent

    try:
        parent = mlflow_client.get_run(run_id).data.tags.get("mlflow.parentRunId")
        if parent:
            retally_closed_parent(mlflow_client, parent)
    except Exception as err:  # noqa: BLE001 - the job's own record is complete; the tally is a summary
        log.warning("Could not update the sweep's tally for run %s (%s: %s)", run_id, type(err).__name__, err)
