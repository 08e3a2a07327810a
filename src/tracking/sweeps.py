"""A Hydra multirun is one group in MLflow: a parent run per sweep, each job's run nested under it.

`MlflowSweepCallback` runs in the process that launches the sweep (the login node on SLURM):

- `on_multirun_start`, before any job or worker exists: creates the store (sqlite schema) and the
  experiment, so parallel jobs never race to create either; opens the parent run; writes
  `<sweep dir>/mlflow_sweep.json` (store, experiment, parent run id, sweep id). Jobs find that file
  through their own Hydra config (`hydra.sweep.dir`), whatever the launcher: basic, joblib, submitit.
- `on_multirun_end` (or at exit, since Hydra skips that hook when a job raised): counts the jobs'
  outcomes and closes the parent FINISHED when every job completed, FAILED otherwise (KILLED when
  one was interrupted). Tags `sweep_jobs` and `sweep_outcomes` say what happened.
"""

from __future__ import annotations

import atexit
import json
import secrets
from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from src.tracking.client import client, log_batch, search_all_runs
from src.tracking.params import git_commit
from src.tracking.store import get_or_create_experiment, tracking_uri
from src.tracking.study_result import record_study_result
from src.tracking.sweep_axes import sweep_varying_keys

SWEEP_FILE = "mlflow_sweep.json"  # written by the sweep callback into the sweep dir, read by every job


def read_sweep_file(sweep_dir: Path) -> dict[str, Any]:
    """What the sweep callback recorded for this sweep ({} when it did not run)."""
    path = Path(sweep_dir) / SWEEP_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def sweep_context() -> dict[str, Any]:
    """For a multirun job: its number plus the sweep callback's record; {} for a single run."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return {}
    hydra_cfg = HydraConfig.get()
    return {**read_sweep_file(Path(hydra_cfg.sweep.dir)), "job_num": hydra_cfg.job.num}


def sweep_tags(sweep: Mapping[str, Any]) -> dict[str, str]:
    """Tags that nest a job's run under its sweep's parent run (none for single runs)."""
    tags = {"sweep_role": "job", "sweep_job": str(sweep["job_num"])} if "job_num" in sweep else {}
    if sweep.get("sweep_id"):
        tags["sweep_id"] = sweep["sweep_id"]
    if sweep.get("parent_run_id"):
        tags["mlflow.parentRunId"] = sweep["parent_run_id"]
    return tags


def new_sweep_id() -> str:
    """Readable and unique: `20250101-120000-3fa2` (launch time + 16 random bits)."""
    return f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def job_dirs(sweep_dir: Path) -> list[Path]:
    """Job folders Hydra created (`hydra.sweep.subdir` = job number): jobs that started."""
    return [p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()] if sweep_dir.is_dir() else []


def summarize(outcomes: Counter[str], jobs: int) -> tuple[str, str]:
    """(`sweep_outcomes` tag, terminal status) from the children's outcomes."""
    text = " ".join(f"{k}={v}" for k, v in sorted(outcomes.items())) or "none"
    if jobs and outcomes.get("completed", 0) == jobs:
        return text, "FINISHED"
    return text, "KILLED" if outcomes.get("interrupted") else "FAILED"


class MlflowSweepCallback(Callback):
    """Opens and closes the parent run of a multirun sweep (see the module docstring).

    Args:
        enabled: false leaves sweeps ungrouped (jobs are still tagged with their job number).
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._open: dict[str, Any] | None = None

    def __getstate__(self) -> dict[str, Any]:
        """Launchers pickle callbacks into their workers: ship the settings, not the open parent run."""
        return {"enabled": self.enabled, "_open": None}

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.enabled:
            return
        sweep_dir = Path(str(config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        uri = tracking_uri()
        mlflow_client = client(uri)
        mlflow_client.search_experiments(max_results=1)  # creates and migrates a new sqlite store now
        experiment_id = get_or_create_experiment(mlflow_client, config.logger.experiment_name)
        sweep_id = new_sweep_id()
        overrides = " ".join(config.hydra.overrides.task)
        commit = git_commit()
        tags = {
            "sweep_id": sweep_id,
            "sweep_role": "parent",
            "sweep_overrides": overrides,
            "sweep_dir": str(sweep_dir),
            "sweep_launcher": str(config.hydra.launcher.get("_target_", "")).rsplit(".", 1)[-1],
            "mlflow.source.git.commit": commit,
            "git_commit": commit,
        }
        run_id = mlflow_client.create_run(experiment_id, run_name=f"sweep-{sweep_id}", tags=tags).info.run_id
        info = {"tracking_uri": uri, "experiment_id": experiment_id, "parent_run_id": run_id, "sweep_id": sweep_id}
        try:
            info["varying_keys"] = sweep_varying_keys(config)  # what the jobs' run names show
            params = config.hydra.sweeper.get("params")
            record = {"sweep_id": sweep_id, "overrides": overrides, "sweeper_params": params or {}}
            mlflow_client.log_text(run_id, OmegaConf.to_yaml(OmegaConf.create(record)), "config/sweep.yaml")
            (sweep_dir / SWEEP_FILE).write_text(json.dumps(info, indent=2) + "\n")
        except BaseException:  # Hydra turns a callback's exception into a warning: leave no dangling parent
            mlflow_client.set_terminated(run_id, "FAILED")
            raise
        self._open = {**info, "client": mlflow_client, "sweep_dir": sweep_dir}
        atexit.register(self.close)  # Hydra skips on_multirun_end when a job raised
        print(f"MLflow sweep {sweep_id}: parent run {run_id} in experiment {config.logger.experiment_name}")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self.close()

    def close(self) -> None:
        """Record the jobs' outcomes on the parent run and end it; a no-op once closed."""
        if self._open is None:
            return
        state, self._open = self._open, None
        mlflow_client, parent = state["client"], state["parent_run_id"]
        children = child_runs(mlflow_client, parent)
        outcomes = Counter(run.data.tags.get("outcome") or run.info.status.lower() for run in children)
        jobs = max(len(children), len(job_dirs(state["sweep_dir"])))
        if jobs > len(children):  # started, but failed before its run existed (e.g. a bad setting)
            outcomes["no_run"] += jobs - len(children)
        text, status = summarize(outcomes, jobs)
        log_batch(
            mlflow_client,
            parent,
            tags={"sweep_jobs": jobs, "sweep_outcomes": text, "sweep_all_completed": str(status == "FINISHED").lower()},
        )
        mlflow_client.set_terminated(parent, status)
        record_study_result(mlflow_client, parent, state["sweep_dir"])  # a search sweeper's best trial, once closed
        print(f"MLflow sweep {state['sweep_id']}: {jobs} jobs, {text} -> parent run {status}")


def child_runs(mlflow_client: Any, parent_run_id: str) -> list[Any]:
    """Every run nested under `parent_run_id`, in any experiment of the store."""
    return search_all_runs(mlflow_client, f"tags.`mlflow.parentRunId` = '{parent_run_id}'")
