"""Entry point: `python -m src.train [overrides]`.

Composes the config, validates it, instantiates data, model and trainer, trains, tests and
reports where the run is in MLflow. No logic of its own lives here.
"""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig

from src.paths import CONFIG_DIR

# A user's mistake, not a crash: its message alone goes to stderr, exit status 2. Each is looked up only
# where its module is loaded (an instance cannot exist otherwise), so nothing heavy is imported for it.
USER_ERRORS = (
    ("src.config", "ConfigError"),
    ("src.lifecycle.resume", "ResumeError"),
    ("src.training.data.base", "DataUnavailableError"),
    ("src.tracking.reachability", "TrackingUnavailable"),
)


def is_user_error(exc: BaseException) -> bool:
    loaded = [getattr(sys.modules[module], name) for module, name in USER_ERRORS if module in sys.modules]
    return isinstance(exc, tuple(loaded))


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def train(cfg: DictConfig) -> dict[str, float]:
    """Run one training job from a composed config; return the final metrics."""
    from hydra.core.hydra_config import HydraConfig

    from src.lifecycle.ranks import is_relaunched_rank
    from src.tracking.client import client
    from src.tracking.reachability import ensure_reachable
    from src.tracking.store import tracking_uri

    if not is_relaunched_rank():
        ensure_reachable(tracking_uri())  # an unreachable store fails in seconds, before the heavy imports

    from src.config.validation import validate
    from src.lifecycle.resume_overrides import compose_for_resume

    cfg = compose_for_resume(cfg)  # resume=<run_id> alone: the run's own overrides, the typed ones winning

    validate(cfg)  # fails here, before any run exists, on bad settings
    hydra_cfg = HydraConfig.get() if HydraConfig.initialized() else None
    choices = dict(hydra_cfg.runtime.choices) if hydra_cfg else {}
    overrides = list(hydra_cfg.overrides.task) if hydra_cfg else []

    import pytorch_lightning as pl

    from src.lifecycle.checkpoint_io import AtomicCheckpoints
    from src.lifecycle.graceful_stop import GracefulStop
    from src.lifecycle.reaper import reap_at_start
    from src.lifecycle.resume import (
        RunIdentity,
        check_checkpoint_fits,
        checkpoint_dir,
        plan_resume,
        record_checkpoint_dir,
    )
    from src.lifecycle.run_context import tracked_run
    from src.lifecycle.skip_resume import plan_skip, record_skip
    from src.monitor.forensics import summary_line
    from src.monitor.verdict import VerdictSource, combine
    from src.tracking.datasets import LogDatasetInputs
    from src.tracking.logger import RunLogger
    from src.tracking.store import ui_command
    from src.tracking.ui_links import run_url, ui_base_url
    from src.training.builders import build_callbacks, build_datamodule, build_module, build_trainer

    if not is_relaunched_rank():
        reap_at_start(client())  # close runs whose process died (`lost`): one search of RUNNING runs
    plan = plan_resume(cfg, client())  # every DDP rank resolves the same checkpoint (read-only)
    plan, skip = plan_skip(cfg, client(), plan)  # skip_bad_batches: a good checkpoint, examples left out
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = build_datamodule(cfg)
    if skip is not None:
        datamodule.leave_out(skip.indices)
    datamodule.prepare_data()  # missing data sets fail here, with a clear message, before any run
    module = build_module(cfg)
    check_checkpoint_fits(plan, module)  # a checkpoint for another model fails here, the run untouched
    resume = (plan.run_id, plan.ckpt_path) if plan.run_id else None
    with tracked_run(cfg, choices, overrides, resume=resume) as run:
        callbacks = build_callbacks(cfg)
        ckpt_dir = checkpoint_dir(cfg.trainer, callbacks)
        callbacks += [GracefulStop(ckpt_dir), RunIdentity(run["run_id"]), AtomicCheckpoints()]
        callbacks += [LogDatasetInputs(run["client"], run["run_id"])]  # the Dataset column of the UI
        record_checkpoint_dir(run, ckpt_dir, plan)  # how `resume=<run_id>` finds last.ckpt
        record_skip(run, skip)  # the skip.* tags, and one line saying what is left out
        trainer = build_trainer(cfg, RunLogger(run["client"], run["run_id"]), callbacks)
        trainer.fit(module, datamodule=datamodule, ckpt_path=plan.ckpt_path)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        health = combine(cb.verdict() for cb in callbacks if isinstance(cb, VerdictSource))
        forensics = summary_line(callbacks)  # where the first NaN came from, when the monitor replayed it
        if health.diverged:
            run["outcome"] = "diverged"
        if cfg.test and not trainer.interrupted and (not health.diverged or health.test_after_divergence):
            ckpt = "best" if trainer.checkpoint_callback and trainer.checkpoint_callback.best_model_path else None
            results = trainer.test(module, datamodule=datamodule, ckpt_path=ckpt, verbose=False)
            metrics.update(results[0] if results else {})
        if trainer.interrupted:
            raise KeyboardInterrupt
    if not run["owner"]:
        return metrics
    info, uri = run["client"].get_run(run["run_id"]).info, run["client"].tracking_uri
    print(f"\nMLflow run {info.run_name} (id {info.run_id}) outcome={run['outcome']}")
    if forensics:
        print(f"Forensics: {forensics}")
    if "test/acc" in metrics:
        print(f"test/acc = {metrics['test/acc']:.4f}")
    if not in_multirun():  # a sweep prints it once, when it ends (src/tracking/sweeps.py)
        print(f"Open the UI: {ui_command(uri)}")
    print(f"Run page:    {run_url(ui_base_url(uri), info.experiment_id, info.run_id)}\n")
    return metrics


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    from src.lifecycle.console import quiet

    quiet()
    try:
        metrics = train(cfg)
    except BaseException as exc:
        from src.lifecycle.exits import exit_for

        replacement = exit_for(exc)  # 130/143 after SIGINT/SIGTERM (JobStopped in a sweep worker), a full disk's line
        if replacement is not None:
            raise replacement from None
        if not is_user_error(exc):
            raise  # a crash: Hydra prints its traceback, exit status 1
        if in_multirun():  # an Exception fails this job only (SystemExit would end the sweep); no traceback
            logging.getLogger(__name__).error("%s", exc)
            raise exc.with_traceback(None) from None
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None
    return metrics.get(cfg.get("optimized_metric") or "test/acc")


if __name__ == "__main__":
    main()
