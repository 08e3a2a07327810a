"""A SLURM job that is requeued continues its own MLflow run instead of opening a new one.

SLURM requeues a job by running its batch script again: after a preemption (`PreemptMode=REQUEUE`),
`scontrol requeue <job>`, or submitit's own requeue on USR2 (`signal_delay_s` before the time limit, or
`scancel --signal=USR2`). submitit then runs the job's pickle again, with the overrides the sweep gave it.
Two pieces make that attempt continue the run the first attempt left KILLED with its `last.ckpt`:

- `continue_requeued_run(cfg)`, at the start of a job whose `SLURM_RESTART_COUNT` is above 0: the run
  of this SLURM job (tags `slurm_job_id` and, in an array, `slurm_array_job`; in a sweep also its
  `sweep_id` and `sweep_job`) is looked up and the job becomes `resume=<that run>`. No run found (the
  first attempt died before it opened one) or no `last.ckpt` in its folder: a fresh run, as before.
- `requeue_after_stop(exc)`, once the run is closed after a USR2: submitit's own USR2 handler runs,
  which writes the job's pickle again (`checkpoint()`), calls `scontrol requeue` and exits without a
  result, so the sweep's launcher keeps waiting for the requeued attempt. With `max_num_timeout`
  spent it raises instead, and the launcher gets the stopped job's error; the run stays resumable.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict

log = logging.getLogger(__name__)

RESTART_ENV = "SLURM_RESTART_COUNT"  # set by SLURM in a job that was requeued: 1, 2, ...


def restart_count() -> int:
    """How many times SLURM has requeued this job (0 outside SLURM or on the first attempt)."""
    try:
        return int(os.environ.get(RESTART_ENV, "0") or 0)
    except ValueError:
        return 0


def own_run_filter() -> str | None:
    """The MLflow search filter for the run this SLURM job opened on an earlier attempt; None outside SLURM."""
    from src.tracking.liveness import slurm_tags
    from src.tracking.sweeps import sweep_context

    tags = slurm_tags()
    if not tags:
        return None
    sweep = sweep_context()
    if sweep.get("sweep_id"):
        tags |= {"sweep_id": str(sweep["sweep_id"]), "sweep_job": str(sweep["job_num"])}
    return " and ".join(f"tags.`{k}` = '{v}'" for k, v in sorted(tags.items()))


def find_own_run(mlflow_client: Any) -> Any | None:
    """The newest run of this SLURM job (and sweep job) that an earlier attempt opened, or None."""
    from src.tracking.client import search_all_runs

    where = own_run_filter()
    if where is None:
        return None
    runs = search_all_runs(mlflow_client, where)
    return max(runs, key=lambda r: r.info.start_time or 0) if runs else None


def continue_requeued_run(cfg: DictConfig) -> DictConfig:
    """`cfg` with `resume=<run id>` when this is a requeued SLURM job whose earlier attempt left a run with a
    `last.ckpt`; else `cfg` unchanged (a first attempt, an explicit `resume`/`ckpt_path`, no such run)."""
    from src.lifecycle.ranks import is_relaunched_rank

    if restart_count() == 0 or cfg.get("resume") or cfg.get("ckpt_path") or is_relaunched_rank():
        return cfg
    from src.tracking.client import client

    run = find_own_run(client())
    job = os.environ.get("SLURM_JOB_ID")
    if run is None:
        log.info("SLURM job %s, attempt %d: no run of an earlier attempt; starting a new run", job, restart_count() + 1)
        return cfg
    folder = run.data.tags.get("checkpoint_dir")
    if not folder or not (Path(folder) / "last.ckpt").is_file():
        log.warning("SLURM job %s, attempt %d: its run %s (%s) left no last.ckpt; starting a new run", job,
                    restart_count() + 1, run.info.run_id, run.info.status)
        return cfg
    log.warning("SLURM job %s requeued (attempt %d): continuing its run %s (%s, outcome=%s) from %s", job,
                restart_count() + 1, run.info.run_id, run.info.status, run.data.tags.get("outcome", "-"),
                Path(folder) / "last.ckpt")
    with open_dict(cfg):
        cfg.resume = run.info.run_id
    return cfg


def requeue_after_stop(exc: BaseException) -> None:
    """After a stop by USR2 in a submitit job, with the run closed: submitit's handler checkpoints the job
    (its pickle), requeues it and exits (SystemExit, no result); or raises when it will not requeue."""
    from src.lifecycle.signals import REQUEUE_SIGNAL, STOP, is_interrupt

    if not (STOP.requeue_asked and is_interrupt(exc)):
        return
    handler, STOP.requeue = STOP.requeue, None
    log.warning("Stopped by USR2: the run is closed with its last.ckpt; asking submitit to requeue the job")
    handler(REQUEUE_SIGNAL, None)
