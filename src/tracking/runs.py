"""A job's MLflow run: created (or reopened on resume) with its params, tags and config, and finished
with the terminal status that matches its outcome.

Sweeps: `src.tracking.sweeps.MlflowSweepCallback` opens one parent run per multirun and writes
`<sweep dir>/mlflow_sweep.json`; each job's `start_run` reads it and nests its run under the parent.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig

from src.tracking.client import client, log_batch
from src.tracking.naming import deduplicate_in_sweep, reg_label, run_name
from src.tracking.outcome import finish_run
from src.tracking.params import config_params, git_commit, location_tags, log_config
from src.tracking.redaction import scrub, scrub_overrides
from src.tracking.store import get_or_create_experiment
from src.tracking.sweeps import sweep_context, sweep_tags

log = logging.getLogger(__name__)

MAX_TAG_LENGTH = 8000  # MLflow's limit for a tag value
RUN_CONTROL_KEYS = ("resume", "ckpt_path", "skip_bad_batches")  # how a job starts, not what it trains: differ on resume


def start_run(
    cfg: DictConfig, choices: Mapping[str, Any], overrides: list[str], process: Mapping[str, str] | None = None
) -> tuple[Any, str]:
    """Create the run, log params (full values), tags and the config artifacts; return (client, run_id).

    In a multirun the run is nested under the sweep's parent run, on the parent's store. `process`:
    the liveness tags (host, pid, ...), set with the run so it is never RUNNING without them.
    """
    sweep = sweep_context()
    mlflow_client = client(sweep.get("tracking_uri"))
    experiment_id = get_or_create_experiment(mlflow_client, cfg.logger.experiment_name)
    overrides = scrub_overrides(overrides)
    commit = git_commit()
    tags = {
        "mlflow.runName": run_name(cfg, choices, overrides, sweep),
        "mlflow.source.git.commit": commit,
        "git_commit": commit,
        "overrides": " ".join(overrides),
        "reg": reg_label(cfg),
        **{f"choice.{k}": str(v) for k, v in choices.items() if not k.startswith("hydra")},
        **sweep_tags(sweep),
        **(process or {}),
    }
    run = mlflow_client.create_run(experiment_id, run_name=tags["mlflow.runName"], tags=scrub(tags))
    run_id = run.info.run_id
    try:
        deduplicate_in_sweep(mlflow_client, run, sweep)
        log_batch(mlflow_client, run_id, params=config_params(cfg), tags=location_tags(cfg))
        log_config(mlflow_client, run_id, cfg, overrides)
    except BaseException:
        finish_run(mlflow_client, run_id, "failed")  # never leave a half-made run RUNNING
        raise
    return mlflow_client, run_id


def resume_run(
    cfg: DictConfig, overrides: list[str], run_id: str, ckpt_path: str, process: Mapping[str, str] | None = None
) -> tuple[Any, str]:
    """Reopen an existing run for resumed training: status RUNNING, `outcome` cleared until the end.

    First the run is claimed for this process (`src/tracking/claim.py`): when another live process
    holds it, or wins the claim at the same moment, `RunClaimed` is raised and nothing was written.

    The liveness tags (`process`) are written before the status turns RUNNING, so the reaper never
    sees the run RUNNING with the pid of the attempt that ended. The last attempt's outcome is kept
    as `resume.<n>.previous_outcome`; the reaper's `lost.*` tags of that attempt are removed.

    MLflow refuses a param logged again with another value, so only params the run lacks are
    logged; keys whose value changed are listed in the tag `resume.<n>.changed_params` and the
    new resolved config is stored as `config/config-resume<n>.yaml`.
    """
    from src.tracking.claim import claim_run
    from src.tracking.reaper import liveness_settings

    mlflow_client = client()
    _, lost_after_s, _ = liveness_settings()
    claim_run(mlflow_client, run_id, dict(process or {}), f"resume={run_id!r}", lost_after_s)  # or RunClaimed
    run = mlflow_client.get_run(run_id)  # as the claim left it
    logged, params = run.data.params, config_params(cfg)
    changed = sorted(k for k, v in params.items() if k in logged and logged[k] != v and k not in RUN_CONTROL_KEYS)
    n = int(run.data.tags.get("resume_count", "0")) + 1
    overrides = scrub_overrides(overrides)
    tags = {
        "resume_count": str(n),
        f"resume.{n}.ckpt_path": ckpt_path,
        f"resume.{n}.overrides": " ".join(overrides),
        f"resume.{n}.changed_params": ",".join(changed)[:MAX_TAG_LENGTH] or "-",
        f"resume.{n}.git_commit": git_commit(),
        f"resume.{n}.previous_outcome": run.data.tags.get("outcome", run.info.status.lower()),
    }
    log_batch(mlflow_client, run_id, tags=dict(process or {}))
    for key in [k for k in run.data.tags if k == "outcome" or k.startswith("lost.") or k == "resume_hint"]:
        mlflow_client.delete_tag(run_id, key)  # they said how the last attempt ended; this one is running
    mlflow_client.update_run(run_id, status="RUNNING")
    try:
        log_batch(mlflow_client, run_id, params={k: v for k, v in params.items() if k not in logged}, tags=scrub(tags))
        log_config(mlflow_client, run_id, cfg, overrides, suffix=f"-resume{n}")
    except BaseException:
        finish_run(mlflow_client, run_id, "failed")
        raise
    if changed:
        log.info("Resuming run %s: params that differ from the first start (kept as first logged): %s", run_id, changed)
    return mlflow_client, run_id
