"""The run context: a job's MLflow run whose status always tells how the job ended."""

from __future__ import annotations

import os
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from omegaconf import DictConfig

from src.tracking.client import client
from src.tracking.runs import finish_run, resume_run, start_run


@contextmanager
def tracked_run(
    cfg: DictConfig, choices: Mapping[str, Any], overrides: list[str], resume: tuple[str, str] | None = None
) -> Iterator[dict[str, Any]]:
    """A run whose MLflow status always tells how it ended.

    Yields a dict with `client`, `run_id`, `outcome` (the body may set it to `diverged`) and `owner`
    (False in DDP ranks that Lightning re-launched: they attach to rank 0's run and record nothing).
    `resume=(run_id, ckpt_path)` continues that run instead of creating one. An exception marks the
    run `failed` (traceback as an artifact); SIGINT/SIGTERM or Ctrl-C mark it `interrupted` (KILLED);
    all re-raise.
    """
    from src.lifecycle.ranks import RUN_ID_ENV, is_relaunched_rank, shared_run_id
    from src.lifecycle.signals import is_interrupt, stop_on_signals

    if is_relaunched_rank():
        yield {"client": client(), "run_id": shared_run_id(), "outcome": "completed", "owner": False}
        return
    with stop_on_signals():
        mlflow_client, run_id = resume_run(cfg, overrides, *resume) if resume else start_run(cfg, choices, overrides)
        state: dict[str, Any] = {"client": mlflow_client, "run_id": run_id, "outcome": "completed", "owner": True}
        os.environ[RUN_ID_ENV] = run_id  # for the DDP ranks Lightning re-launches from this process
        try:
            yield state
        except BaseException as exc:
            if is_interrupt(exc):
                finish_run(mlflow_client, run_id, "interrupted")
                print(f"\nRun {run_id} stopped ({type(exc).__name__}): status KILLED, outcome=interrupted. "
                      f"Continue it with: python -m src.train resume={run_id}")
            else:
                try:
                    mlflow_client.log_text(run_id, traceback.format_exc(), "traceback.txt")
                finally:
                    finish_run(mlflow_client, run_id, "failed")
            raise
        else:
            finish_run(mlflow_client, run_id, state["outcome"])
        finally:
            os.environ.pop(RUN_ID_ENV, None)
