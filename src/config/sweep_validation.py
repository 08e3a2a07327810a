"""A sweep is checked whole before it starts: every job's composed config, in the launching process.

Without this, each job validates its own config after its launcher started it (a joblib worker
after tens of seconds of start-up, a SLURM task after its queue wait), and a grid with one bad
corner runs every good job first, then fails one job with a traceback. Here a Hydra callback
(`SweepValidation`, first in `conf/hydra/default.yaml`, so its `on_multirun_start` runs before the
MLflow sweep callback's) lists the jobs with the basic sweeper's own `split_arguments` (the jobs it
will launch), composes each job's config as the launcher will (Hydra's `load_sweep_config` on the
job's overrides, its number and output folder in its Hydra config) and checks it with
`src.config.validation.validate`. Any failure refuses the
whole sweep: one message naming each failing job's overrides and the keys at fault, exit status 2,
before any store, run, sweep folder or worker exists.

Only grids are known in advance (Hydra's basic sweeper); a search sweeper (Optuna) picks its
trials as it goes, and each trial is validated by its own job.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, open_dict, read_write

MAX_SHOWN = 20  # failing jobs listed in full; the rest are counted


class SweepValidation(Callback):
    """Hydra callback: `validate_sweep` at `on_multirun_start`, before any other callback or launcher acts."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        validate_sweep(config)
        check_sweep_store(config)


class SweepRefused(SystemExit):
    """Exit status 2 with the message already printed: Hydra's callbacks let a SystemExit through."""

    def __init__(self) -> None:
        super().__init__(2)


def job_overrides(config: DictConfig) -> list[list[str]] | None:
    """Each job's overrides in launch order, as Hydra's basic sweeper makes them; None for another sweeper."""
    if not str(config.hydra.sweeper.get("_target_", "")).endswith("BasicSweeper"):
        return None
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = config.hydra.sweeper.get("params") or {}
    lines = [f"{k}={v}" for k, v in params.items()] + list(config.hydra.overrides.task)
    parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
    batches = BasicSweeper.split_arguments(parser.parse_overrides(lines), None)
    return [job for batch in batches for job in batch]


def job_config(config: DictConfig, overrides: list[str], num: int) -> DictConfig:
    """The job's config as the launcher composes it (with its Hydra node, its number and output folder)."""
    from hydra.core.global_hydra import GlobalHydra

    job = GlobalHydra.instance().config_loader().load_sweep_config(config, list(overrides))
    with open_dict(job), read_write(job.hydra):
        job.hydra.mode = config.hydra.mode
        job.hydra.job.id = num
        job.hydra.job.num = num
        output_dir = os.path.join(str(job.hydra.sweep.dir), str(job.hydra.sweep.subdir))
        job.hydra.runtime.output_dir = os.path.abspath(output_dir)
    return job


def job_problems(config: DictConfig, overrides: list[str], num: int) -> list[str]:
    """Why this job's config would be refused (its lines), or [] when it is valid."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.errors import HydraException

    from src.config.validation import validate
    from src.settings import ConfigError

    try:
        job = job_config(config, overrides, num)
    except HydraException as err:  # an option that does not exist: `reg=l3`
        return [str(err).splitlines()[0]]
    holder = HydraConfig.instance()
    launcher_cfg = holder.cfg
    holder.set_config(job)  # what `${hydra:...}` resolves to inside the job
    try:
        task = job.copy()
        with read_write(task), open_dict(task):
            del task["hydra"]
        validate(task)
    except ConfigError as err:
        lines = str(err).splitlines()
        return [line.strip() for line in (lines[1:] if len(lines) > 1 else lines) if line.strip()]
    finally:
        holder.cfg = launcher_cfg
    return []


def refusal(failures: list[tuple[int, list[str], list[str]]], jobs: int) -> str:
    """The one message: each failing job's number, overrides and problems."""
    lines = [f"Sweep refused: {len(failures)} of its {jobs} jobs would fail validation, so none was launched "
             "(no MLflow run, no sweep folder). Fix these settings and run the sweep again:"]
    for num, overrides, problems in failures[:MAX_SHOWN]:
        lines.append(f"  job {num} ({' '.join(overrides) or 'no overrides'}):")
        lines += [f"    {problem}" for problem in problems]
    if len(failures) > MAX_SHOWN:
        lines.append(f"  ... and {len(failures) - MAX_SHOWN} more jobs")
    return "\n".join(lines)


def check_sweep_store(config: DictConfig) -> None:
    """The store every job would write to, checked once here: unreachable, not MLflow, broken, full, locked, a
    deleted experiment, a read-only artifact root (`src/tracking/reachability.py`, `src/tracking/run_home.py`).

    Raises:
        SweepRefused: (exit status 2) after printing the store's one line, before any job or run exists.
    """
    from src.settings import UserError
    from src.settings.environment import check_environment
    from src.tracking.client import client
    from src.tracking.reachability import ensure_reachable
    from src.tracking.run_home import ensure_run_home
    from src.tracking.store import tracking_uri

    try:
        check_environment()
        uri = tracking_uri()
        ensure_reachable(uri)
        ensure_run_home(client(uri), config)
    except UserError as err:
        print(f"Sweep refused (no job was launched): {err}", file=sys.stderr)
        raise SweepRefused from None


def validate_sweep(config: DictConfig) -> int:
    """Check every job of the multirun `config`; return how many were checked (0: not a grid).

    Raises:
        SweepRefused: (exit status 2) after printing the refusal to stderr, when any job is invalid.
    """
    jobs = job_overrides(config)
    if jobs is None:
        return 0
    from src.tracking.sweep_axes import sweep_varying_keys

    varying = set(sweep_varying_keys(config))
    failures = []
    for num, overrides in enumerate(jobs):
        problems = job_problems(config, overrides, num)
        if problems:
            shown = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") in varying]
            failures.append((num, shown or overrides, problems))
    if failures:
        print(refusal(failures, len(jobs)), file=sys.stderr)
        raise SweepRefused
    return len(jobs)
