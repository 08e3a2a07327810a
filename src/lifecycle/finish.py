"""How a job ends: its final metrics, the test after training, the lines it prints, the value a sweeper gets.

The end-of-run lines (the run, its outcome, where to look) are the command line's answer, so they
are printed, not logged; `objective` is what `main()` hands a Hydra sweeper (Optuna).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from src.settings import ConfigError

if TYPE_CHECKING:  # `main()` imports this module before the store is probed: nothing heavy at import
    import pytorch_lightning as pl

    from src.lifecycle.run_context import Run

DEFAULT_OBJECTIVE = "test/acc"  # when `optimized_metric` is null
PHASES = ("train/", "val/", "test/")  # a phase that may not run at all (test=false, limit_val_batches=0, ...)


@dataclass
class JobResult:
    """What `train()` returns: the run's final scalar metrics and how it ended."""

    metrics: dict[str, float] = field(default_factory=dict)
    outcome: str = "completed"


def final_metrics(trainer: pl.Trainer) -> dict[str, float]:
    """The scalar metrics Lightning holds after `fit` (the last logged value of each)."""
    return {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}


def run_test_if_due(cfg: DictConfig, trainer: pl.Trainer, module: pl.LightningModule,
                datamodule: pl.LightningDataModule, diverged: bool, test_after_divergence: bool) -> dict[str, float]:
    """Test metrics (on the best checkpoint when one was kept), or {} when `test=false`, the fit was
    stopped, or the run diverged and the monitor says not to test after a divergence."""
    if not cfg.test or trainer.interrupted or (diverged and not test_after_divergence):
        return {}
    ckpt = "best" if trainer.checkpoint_callback and trainer.checkpoint_callback.best_model_path else None
    results = trainer.test(module, datamodule=datamodule, ckpt_path=ckpt, verbose=False)
    return dict(results[0]) if results else {}


def objective(cfg: DictConfig, result: JobResult) -> float | None:
    """The value of `optimized_metric` (default test/acc) for a Hydra sweeper.

    None when the run never reached that metric for a known reason: it diverged (a trial that
    diverges before validating counts as failed in an Optuna study), or the metric's phase did not
    run at all (no `test/*` metric after `test=false`, no `val/*` one with `limit_val_batches=0`).

    Raises:
        ConfigError: the run completed and the metric's phase ran (or is none of train/val/test),
            yet there is no such metric: a misspelled name, `val/accuracy` for `val/acc`. The
            message names the metrics that exist.
    """
    name = cfg.get("optimized_metric") or DEFAULT_OBJECTIVE
    if name in result.metrics:
        return float(result.metrics[name])
    phase = name.partition("/")[0] + "/"
    phase_ran = any(key.startswith(phase) for key in result.metrics)
    if result.outcome != "completed" or not (phase_ran or phase not in PHASES):
        return None
    raise ConfigError(f"optimized_metric={name!r} is not a metric of this run; "
                      f"its metrics are {sorted(result.metrics)}")


def print_summary(run: Run, metrics: Mapping[str, float], forensics: Any, health: Sequence[str] = ()) -> None:
    """The run's name, id and outcome, where the first NaN came from, the health summary's lines
    (`src/monitor/summary.py`), test/acc, and where to look."""
    from src.lifecycle.exits import in_multirun
    from src.tracking.store import ui_command
    from src.tracking.ui_links import run_url, ui_base_url

    info, uri = run.client.get_run(run.run_id).info, run.client.tracking_uri
    print(f"\nMLflow run {info.run_name} (id {info.run_id}) outcome={run.outcome}")
    if forensics:
        print(f"Forensics: {forensics}")
    for line in health:
        print(line)
    if "test/acc" in metrics:
        print(f"test/acc = {metrics['test/acc']:.4f}")
    if not in_multirun():  # a sweep prints it once, when it ends (src/tracking/sweeps.py)
        print(f"Open the UI: {ui_command(uri)}")
    print(f"Run page:    {run_url(ui_base_url(uri), info.experiment_id, info.run_id)}\n")
