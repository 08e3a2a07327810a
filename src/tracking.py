"""MLflow: where runs are stored, how they are named, what each run records.

Store: `sqlite:///<project root>/mlruns/mlflow.db` with artifacts under `mlruns/artifacts/`
(MLflow >= 3.13 refuses the plain file store). `MLFLOW_TRACKING_URI` overrides it.

Sweeps: `src.sweep.MlflowSweepCallback` opens one parent run per multirun and writes
`<sweep dir>/mlflow_sweep.json`; each job's `start_run` reads it and nests its run under the parent.
Every client call retries when parallel jobs find the sqlite store locked.
"""

from __future__ import annotations

import functools
import json
import os
import random
import subprocess
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from src.paths import PROJECT_ROOT
from src.redact import redact_uri, scrub, scrub_overrides, scrub_tree

OUTCOMES = ("completed", "diverged", "failed", "interrupted")
MAX_PARAM_LENGTH = 6000  # MLflow's limit for a param value
MAX_TAG_LENGTH = 8000  # MLflow's limit for a tag value
RUN_CONTROL_KEYS = ("resume", "ckpt_path")  # say how a job starts, not what it trains: differ on resume
SWEEP_FILE = "mlflow_sweep.json"  # written by the sweep callback into the sweep dir, read by every job
LOCKED_ERRORS = ("database is locked", "database table is locked")  # sqlite's SQLITE_BUSY / SQLITE_LOCKED


def default_store_dir() -> Path:
    return PROJECT_ROOT / "mlruns"


def tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI` if set, else the project's sqlite store (its folder is created)."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    store = default_store_dir()
    store.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{store / 'mlflow.db'}"


def artifact_location(uri: str, experiment_name: str) -> str | None:
    """Artifacts of a sqlite store lie beside its database; servers choose their own."""
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        return (db.parent / "artifacts" / experiment_name).resolve().as_uri()
    return None


def ui_command(uri: str | None = None) -> str:
    """The exact command that opens the MLflow UI on this store, bound to 127.0.0.1 (credentials stripped)."""
    uri = redact_uri(uri or tracking_uri())
    if uri.startswith(("http://", "https://")):
        return f"open {uri} in a browser"
    return f"mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000"


def retry_on_locked(call, *args: Any, attempts: int = 8, base_delay_s: float = 0.2, **kwargs: Any) -> Any:  # noqa: ANN001
    """`call(*args, **kwargs)`, retried with jittered exponential back-off while sqlite says it is locked.

    MLflow already waits 20 s for a busy database, but sqlite refuses at once (no wait) when a
    read transaction must upgrade to a write while another process writes: parallel sweep jobs
    hit this. The failed transaction was rolled back, so repeating the call is safe.
    """
    for attempt in range(attempts):
        try:
            return call(*args, **kwargs)
        except Exception as exc:
            if attempt == attempts - 1 or not any(msg in str(exc) for msg in LOCKED_ERRORS):
                raise
            time.sleep(base_delay_s * 2**attempt * (0.5 + random.random()))
    raise AssertionError("unreachable")


class LockRetryingClient:
    """An `MlflowClient` whose every method call goes through `retry_on_locked`."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_inner":  # unpickling, copying: no inner client yet
            raise AttributeError(name)
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        @functools.wraps(attr)
        def call(*args: Any, **kwargs: Any) -> Any:
            return retry_on_locked(attr, *args, **kwargs)

        return call


def client(uri: str | None = None) -> LockRetryingClient:
    """A client of the store (default: `tracking_uri()`) that survives sqlite lock contention."""
    from mlflow.tracking import MlflowClient  # imported lazily (3 s)

    return LockRetryingClient(MlflowClient(tracking_uri=uri or tracking_uri()))


def get_or_create_experiment(mlflow_client, name: str) -> str:  # noqa: ANN001
    """Experiment id by name; created with artifacts beside a sqlite store when new."""
    exp = mlflow_client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return mlflow_client.create_experiment(
            name, artifact_location=artifact_location(mlflow_client.tracking_uri, name)
        )
    except Exception:  # noqa: BLE001 - another process of a sweep created it first
        exp = mlflow_client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def search_all_runs(mlflow_client, filter_string: str = "", experiment_ids: list[str] | None = None) -> list[Any]:  # noqa: ANN001
    """Every run matching `filter_string` (all pages), in the given experiments or all of them."""
    if experiment_ids is None:
        experiment_ids = [e.experiment_id for e in mlflow_client.search_experiments()]
    runs: list[Any] = []
    token = None
    while True:
        page = mlflow_client.search_runs(experiment_ids, filter_string, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def flatten(data: Any, prefix: str = "") -> dict[str, str]:
    """Nested dicts/lists -> {'a.b.0': 'value'} with full string values."""
    out: dict[str, str] = {}
    if isinstance(data, Mapping):
        items = data.items()
    elif isinstance(data, (list, tuple)):
        items = ((str(i), v) for i, v in enumerate(data))
    else:
        return {prefix: str(data)}
    empty = True
    for key, value in items:
        empty = False
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    if empty and prefix:
        out[prefix] = "[]" if isinstance(data, (list, tuple)) else "{}"
    return out


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=5
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if out.returncode != 0:
        return "unknown"
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def reg_label(cfg: DictConfig) -> str:
    """The composed regularizer choice: `l2+dropout`, or `none`."""
    reg = cfg.get("reg") or {}
    return "+".join(reg.keys()) if reg else "none"


def run_name(cfg: DictConfig, choices: Mapping[str, Any]) -> str:
    """`<model>-<reg>-<optim>-s<seed>`, e.g. `vgg19-elasticnet-sgd-s0`."""
    if cfg.logger.get("run_name"):
        return str(cfg.logger.run_name)
    model = choices.get("model", "model")
    optim = choices.get("optim", "optim")
    return f"{model}-{reg_label(cfg)}-{optim}-s{cfg.seed}"


def log_batch(mlflow_client, run_id: str, *, params=None, tags=None, metrics=None) -> None:  # noqa: ANN001
    """One call for many values (MLflow chunks it); each single call costs ~9 ms on sqlite."""
    from mlflow.entities import Metric, Param, RunTag

    ts = int(time.time() * 1000)
    mlflow_client.log_batch(
        run_id,
        params=[Param(k, v[:MAX_PARAM_LENGTH]) for k, v in (params or {}).items()],
        tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()],
        metrics=[Metric(k, float(v), ts, step) for k, (v, step) in (metrics or {}).items()],
    )


def config_params(cfg: DictConfig) -> dict[str, str]:
    """The flattened resolved config as MLflow params, secrets hidden, values cut to MLflow's limit."""
    return {k: v[:MAX_PARAM_LENGTH] for k, v in scrub(flatten(OmegaConf.to_container(cfg, resolve=True))).items()}


def log_config(mlflow_client, run_id: str, cfg: DictConfig, overrides: list[str], suffix: str = "") -> None:  # noqa: ANN001
    """The resolved config and the overrides as YAML artifacts under `config/` (secrets hidden)."""
    resolved = OmegaConf.create(scrub_tree(OmegaConf.to_container(cfg, resolve=True)))
    mlflow_client.log_text(run_id, OmegaConf.to_yaml(resolved), f"config/config{suffix}.yaml")
    mlflow_client.log_text(run_id, OmegaConf.to_yaml(OmegaConf.create(overrides)), f"config/overrides{suffix}.yaml")


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


def start_run(cfg: DictConfig, choices: Mapping[str, Any], overrides: list[str]) -> tuple[Any, str]:
    """Create the run, log params (full values), tags and the config artifacts; return (client, run_id).

    In a multirun the run is nested under the sweep's parent run, on the parent's store.
    """
    sweep = sweep_context()
    mlflow_client = client(sweep.get("tracking_uri"))
    experiment_id = get_or_create_experiment(mlflow_client, cfg.logger.experiment_name)
    overrides = scrub_overrides(overrides)
    tags = {
        "mlflow.runName": run_name(cfg, choices),
        "mlflow.source.git.commit": git_commit(),
        "git_commit": git_commit(),
        "overrides": " ".join(overrides),
        "reg": reg_label(cfg),
        **{f"choice.{k}": str(v) for k, v in choices.items() if not k.startswith("hydra")},
        **sweep_tags(sweep),
    }
    run = mlflow_client.create_run(experiment_id, run_name=tags["mlflow.runName"], tags=scrub(tags))
    run_id = run.info.run_id
    try:
        log_batch(mlflow_client, run_id, params=config_params(cfg))
        log_config(mlflow_client, run_id, cfg, overrides)
    except BaseException:
        finish_run(mlflow_client, run_id, "failed")  # never leave a half-made run RUNNING
        raise
    return mlflow_client, run_id


def resume_run(cfg: DictConfig, overrides: list[str], run_id: str, ckpt_path: str) -> tuple[Any, str]:
    """Reopen an existing run for resumed training: status RUNNING, `outcome` cleared until the end.

    MLflow refuses a param logged again with another value, so only params the run lacks are
    logged; keys whose value changed are listed in the tag `resume.<n>.changed_params` and the
    new resolved config is stored as `config/config-resume<n>.yaml`.
    """
    mlflow_client = client()
    run = mlflow_client.get_run(run_id)
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
    }
    if "outcome" in run.data.tags:
        mlflow_client.delete_tag(run_id, "outcome")  # it said how the last attempt ended; this one is running
    mlflow_client.update_run(run_id, status="RUNNING")
    try:
        log_batch(mlflow_client, run_id, params={k: v for k, v in params.items() if k not in logged}, tags=scrub(tags))
        log_config(mlflow_client, run_id, cfg, overrides, suffix=f"-resume{n}")
    except BaseException:
        finish_run(mlflow_client, run_id, "failed")
        raise
    if changed:
        print(f"Resuming run {run_id}: params that differ from the first start (kept as first logged): {changed}")
    return mlflow_client, run_id


def finish_run(mlflow_client, run_id: str, outcome: str) -> None:  # noqa: ANN001
    """Tag the outcome and set the terminal status that matches it."""
    status = {"completed": "FINISHED", "diverged": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}[outcome]
    mlflow_client.set_tag(run_id, "outcome", outcome)
    mlflow_client.set_terminated(run_id, status)


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
    from src.distributed import RUN_ID_ENV, is_relaunched_rank, shared_run_id
    from src.signals import is_interrupt, stop_on_signals

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
