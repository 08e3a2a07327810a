"""Entry point: `python -m src.train [overrides]`: one training job, told in the order it happens.

compose (Hydra) -> validate -> plan the start -> build data and model -> open the run -> fit -> test
-> report. Each step is one call into the package that owns it; the order of the resume, skip and
reap protocol is held by `JobStart` (`src/lifecycle/start.py`), whose steps refuse to run out of turn.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import hydra
from omegaconf import DictConfig

from src.paths import CONFIG_DIR

if TYPE_CHECKING:
    from src.lifecycle.finish import JobResult


def checked_config(cfg: DictConfig) -> DictConfig:
    """The composed config, completed for `resume=<run_id>` and validated, or a UserError naming every problem."""
    from src.lifecycle.ranks import is_relaunched_rank
    from src.settings.environment import check_environment
    from src.tracking.reachability import ensure_reachable
    from src.tracking.store import tracking_uri

    check_environment()  # every GRADREG_* setting, before the store is probed with one of them
    if not is_relaunched_rank():
        ensure_reachable(tracking_uri())  # an unreachable store fails in seconds, before the heavy imports
    from src.config import validate
    from src.config.accelerator import check_accelerator
    from src.lifecycle.requeue import continue_requeued_run
    from src.lifecycle.resume_overrides import compose_for_resume

    cfg = continue_requeued_run(cfg)  # a requeued SLURM job: resume=<its own run>
    cfg = compose_for_resume(cfg)  # resume=<run_id> alone: the run's own overrides, the typed ones winning
    validate(cfg)  # before any run exists
    check_accelerator(cfg)  # trainer=gpu on a machine without one: refused here, not after an empty run
    if not is_relaunched_rank():
        from src.tracking.client import client
        from src.tracking.run_home import ensure_run_home

        ensure_run_home(client(), cfg)  # a deleted experiment or run, a read-only artifact root: before any run
    return cfg


def train(cfg: DictConfig) -> JobResult:
    """Run one training job from a checked config; return its final metrics and outcome."""
    import pytorch_lightning as pl

    from src.lifecycle.finish import JobResult, final_metrics, print_summary, run_test_if_due
    from src.lifecycle.start import JobStart
    from src.monitor.forensics import summary_line
    from src.monitor.summary import health_summary_lines
    from src.monitor.verdict import VerdictSource, combine
    from src.tracking.logger import RunLogger
    from src.training.builders import build_callbacks, build_datamodule, build_module, build_trainer
    from src.training.frozen_setup import setup_objects_frozen

    start = JobStart.plan(cfg)  # lost runs reaped; the checkpoint and run to continue; examples left out
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = start.data_ready(build_datamodule(cfg))  # a missing data set fails here, before any run
    module = start.model_fits(build_module(cfg))  # a checkpoint of another model fails here, the run untouched
    if start.nothing_to_train:  # a finished run resumed as it was, or with a smaller max_steps
        return left_as_it_was(start.resume.run_id, start.nothing_to_train)
    with start.tracked_run() as run:
        callbacks = start.callbacks(run, build_callbacks(cfg))
        trainer = build_trainer(cfg, RunLogger(run.client, run.run_id, cfg.logger.rows_interval_s), callbacks)
        with setup_objects_frozen():  # the collector skips what was built so far (src/training/frozen_setup.py)
            trainer.fit(module, datamodule=datamodule, ckpt_path=start.ckpt_path)
            metrics = final_metrics(trainer)
            health = combine(cb.verdict() for cb in callbacks if isinstance(cb, VerdictSource))
            forensics = summary_line(callbacks)  # where the first NaN came from, when the monitor replayed it
            run.outcome = "diverged" if health.diverged else run.outcome
            metrics |= run_test_if_due(cfg, trainer, module, datamodule, health.diverged,
                                       health.test_after_divergence)
        if trainer.interrupted:
            raise KeyboardInterrupt  # the run context closes the run as interrupted
    if run.owner:
        print_summary(run, metrics, forensics, health_summary_lines(callbacks))
    return JobResult(metrics, run.outcome)


def left_as_it_was(run_id: str, why: str) -> JobResult:
    """A resume with no step to train: the run is not reopened; its stored metrics and outcome are the result."""
    from src.lifecycle.finish import JobResult
    from src.tracking.client import client

    run = client().get_run(run_id)
    print(f"Nothing to train for run {run_id}: {why}. The run was not changed (status {run.info.status}, "
          f"outcome={run.data.tags.get('outcome', '-')}); raise trainer.max_steps or trainer.max_epochs to go on.")
    return JobResult(dict(run.data.metrics), run.data.tags.get("outcome", "completed"))


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    """The command line; returns `optimized_metric` to a Hydra sweeper. Exit status 2 on a UserError."""
    from src.lifecycle.console import quiet
    from src.lifecycle.exits import exit_status
    from src.lifecycle.finish import objective

    quiet()
    with exit_status():
        try:
            cfg = checked_config(cfg)
            return objective(cfg, train(cfg))
        finally:  # a stopped run's DataLoader workers end with its job (a sweep's worker process runs the next)
            loaders = sys.modules.get("src.training.data.worker_signals")  # loaded once a loader was built
            if loaders is not None:
                loaders.shutdown_live_workers()


if __name__ == "__main__":
    from src.training.frozen_setup import full_collections_off

    full_collections_off()  # none over the imports and set-up (src/training/frozen_setup.py)
    from src.config.composition import refuse_bad_composition

    refuse_bad_composition(sys.argv[1:])  # an unknown group option or key: its options named, exit 2
    main()
