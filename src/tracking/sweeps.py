"""A Hydra multirun is one group in MLflow: a parent run per sweep, each job's run nested under it.

`MlflowSweepCallback` runs in the process that launches the sweep (the login node on SLURM):

- `on_multirun_start`, before any job or worker exists (and after `src/config/sweep_validation.py`
  checked every job's config): creates the store (sqlite schema) and the experiment, so parallel
  jobs never race to create either; closes lost runs (the reaper); opens the parent run with the
  launcher's liveness tags and heartbeat; writes
  `<sweep dir>/mlflow_sweep.json` (store, experiment, parent run id, sweep id, launcher pid). Jobs
  find that file through their own Hydra config (`hydra.sweep.dir`), whatever the launcher:
  basic, joblib, submitit.
- `on_multirun_end` (or at exit, since Hydra skips that hook when a job raised): closes jobs whose
  process died as `lost`, counts the outcomes and closes the parent by the rule in
  `src/tracking/sweep_tally.py` (FINISHED when every job completed or diverged). Tags `sweep_jobs`,
  `sweep_planned_jobs` and `sweep_outcomes` say what happened; the UI command is printed here
  once, not by every job. (The sweep's dashboard follows: `src/report/sweep_dashboard.py`.)

The parent is created eagerly, in the launching process, because that is the one place where no
two jobs can race to create it (nor the store, nor the experiment) on any launcher or file system.
A sweep in which no job created a run (each failed before its run existed: a data set missing, say)
therefore deletes its parent at the end rather than leave an empty FAILED group in the UI; the jobs'
own errors say what was wrong.
The reaper and liveness helpers come from `src/lifecycle/`, imported lazily inside the hooks.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import secrets
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from src.tracking.client import client, log_batch
from src.tracking.params import git_commit
from src.tracking.store import get_or_create_experiment, tracking_uri
from src.tracking.study_result import record_study_result
from src.tracking.sweep_axes import sweep_varying_keys
from src.tracking.sweep_tally import PLANNED_TAG, job_dirs, record_tally, summarize, tally

__all__ = ["MlflowSweepCallback", "read_sweep_file", "summarize", "sweep_context", "sweep_tags"]

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


def planned_jobs(config: DictConfig) -> int:
    """How many jobs the sweeper will launch: the basic sweeper's grid of sweep overrides, a search
    sweeper's `n_trials` (Optuna's); 0 when unknown."""
    if not str(config.hydra.sweeper.get("_target_", "")).endswith("BasicSweeper"):
        trials = config.hydra.sweeper.get("n_trials")
        return int(trials) if isinstance(trials, int) and trials > 0 else 0
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = config.hydra.sweeper.get("params") or {}
    arguments = [f"{k}={v}" for k, v in params.items()] + list(config.hydra.overrides.task)
    sizes: dict[str, int] = {}  # as the basic sweeper does: one axis per key, the last value given wins
    try:
        for override in OverridesParser.create().parse_overrides(arguments):
            swept = override.is_sweep_override() and override.is_discrete_sweep()
            sizes[override.get_key_element()] = len(list(override.sweep_string_iterator())) if swept else 1
    except Exception:  # noqa: BLE001 - e.g. glob() choices need the config loader: count what starts
        return 0
    return math.prod(sizes.values())


def print_ui_lines(mlflow_client: Any, parent_run_id: str) -> None:
    """Once per sweep (its jobs do not repeat it): how to open the UI, and the parent run's page."""
    from src.tracking.store import ui_command
    from src.tracking.ui_links import run_url, ui_base_url

    uri = mlflow_client.tracking_uri
    experiment_id = mlflow_client.get_run(parent_run_id).info.experiment_id
    page = run_url(ui_base_url(uri), experiment_id, parent_run_id)
    print(f"Open the UI: {ui_command(uri)}")
    print(f"Sweep page:  {page}")


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
        from src.tracking.liveness import Heartbeat, process_tags
        from src.tracking.reaper import liveness_settings, reap_at_start

        heartbeat_s, _, _ = liveness_settings()
        sweep_dir = Path(str(config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        uri = tracking_uri()
        mlflow_client = client(uri)
        mlflow_client.search_experiments(max_results=1)  # creates and migrates a new sqlite store now
        reap_at_start(mlflow_client)
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
            PLANNED_TAG: str(planned_jobs(config)),
            "mlflow.source.git.commit": commit,
            "git_commit": commit,
            **process_tags(),  # the launcher's process: the reaper closes the parent if it dies
        }
        run_id = mlflow_client.create_run(experiment_id, run_name=f"sweep-{sweep_id}", tags=tags).info.run_id
        info = {"tracking_uri": uri, "experiment_id": experiment_id, "parent_run_id": run_id, "sweep_id": sweep_id,
                "launcher_host": tags["host"], "launcher_pid": os.getpid()}
        try:
            info["varying_keys"] = sweep_varying_keys(config)  # what the jobs' run names show
            params = config.hydra.sweeper.get("params")
            record = {"sweep_id": sweep_id, "overrides": overrides, "sweeper_params": params or {}}
            mlflow_client.log_text(run_id, OmegaConf.to_yaml(OmegaConf.create(record)), "config/sweep.yaml")
            (sweep_dir / SWEEP_FILE).write_text(json.dumps(info, indent=2) + "\n")
        except BaseException:  # Hydra turns a callback's exception into a warning: leave no dangling parent
            mlflow_client.set_terminated(run_id, "FAILED")
            raise
        heartbeat = Heartbeat(mlflow_client, run_id, heartbeat_s).start()
        self._open = {**info, "client": mlflow_client, "sweep_dir": sweep_dir, "heartbeat": heartbeat,
                      "planned": int(tags[PLANNED_TAG])}
        atexit.register(self.close_at_exit)  # Hydra skips on_multirun_end when a job raised
        print(f"MLflow sweep {sweep_id}: parent run {run_id} in experiment {config.logger.experiment_name}")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self.close()

    def close_at_exit(self) -> None:
        """`close`, saying in one line (not a traceback) when the store cannot be reached any more."""
        sweep_id = (self._open or {}).get("sweep_id")
        try:
            self.close()
        except Exception as err:  # noqa: BLE001 - the interpreter is exiting; the reaper closes the parent later
            print(f"MLflow sweep {sweep_id}: could not close its parent run ({type(err).__name__}: "
                  f"{str(err).splitlines()[0]}); the reaper will close it as lost")

    def close(self) -> None:
        """Record the jobs' outcomes on the parent run and end it; a no-op once closed.

        Jobs whose process died (a SIGKILLed joblib worker) are closed as `lost` first. A sweep in
        which no job created a run (each failed before its run existed) leaves no parent: it is deleted.
        """
        if self._open is None:
            return
        from src.tracking.reaper import liveness_settings, reap
        from src.tracking.sweep_tally import child_runs

        state, self._open = self._open, None
        state["heartbeat"].stop()
        mlflow_client, parent = state["client"], state["parent_run_id"]
        _, lost_after_s, enabled = liveness_settings()
        if enabled:
            running = [r.info.run_id for r in child_runs(mlflow_client, parent) if r.info.status == "RUNNING"]
            if running:
                reap(mlflow_client, lost_after_s, only=running)
        started = len(job_dirs(state["sweep_dir"]))
        jobs, started, outcomes = tally(mlflow_client, parent, state["planned"], started)
        if jobs == sum(outcomes[k] for k in ("no_run", "not_started")):
            log_batch(mlflow_client, parent, tags={"sweep_jobs": jobs, "sweep_outcomes": "no job created a run"})
            mlflow_client.set_terminated(parent, "FAILED")
            mlflow_client.delete_run(parent)
            print(f"MLflow sweep {state['sweep_id']}: none of its {jobs} jobs created a run (see their errors "
                  f"above) -> parent run {parent} deleted")
            return
        status = record_tally(mlflow_client, parent, jobs, started, outcomes)
        record_study_result(mlflow_client, parent, state["sweep_dir"])  # a search sweeper's best trial, once closed
        text = " ".join(f"{k}={v}" for k, v in sorted(outcomes.items()) if v)
        print(f"MLflow sweep {state['sweep_id']}: {jobs} jobs, {text} -> parent run {status}")
        print_ui_lines(mlflow_client, parent)
