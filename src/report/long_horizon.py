"""The blog post's own runs at its horizon (study2 blocks `long_l1_adam`, `long_l2_sgd`): what the post reports
beside what happened.

The post's criteria are on the *average loss*: "vanished" when it is above 100, "exploded" above 1e4. A run logs
`train/objective_avg` (the mean over every batch between two logged steps of the data loss plus the penalty, in
nats: what a training loop that adds the penalty to the loss prints) and `train/loss_avg` (the data loss alone);
both are read here, with their largest and last values. What happened: the steps reached (of the block's
horizon), the run's status, its health verdict and the time in each state (`health/frac_<state>`), the state at
the end, the weights (‖θ‖ of the penalized tensors, the fraction below 1e-3 and exactly 0), the accuracy, and how
long the run trained (its own timestamps, pauses before a resume left out: `run_time.py`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from src.report.run_time import run_seconds
from src.report.study_read import newest_runs
from src.report.table import metric_history, stored_value

LONG_BLOCKS = ("long_l1_adam", "long_l2_sgd")
CRITERIA = {"vanished": 100.0, "exploded": 1e4}  # the post's thresholds on the average loss (nats)
STATES = ("healthy", "vanishing", "exploding", "nonfinite", "divergence", "stalled", "dead_units", "unstable",
          "zeroed_weights", "plateau")


@dataclass
class LongRun:
    block: str
    arm: str
    seed: str
    run_id: str
    status: str
    horizon: int  # the block's max_steps
    steps: int  # optimizer steps reached (the last logged step + 1)
    max_objective_avg: float | None
    last_objective_avg: float | None
    max_loss_avg: float | None
    max_loss: float | None  # the largest single-batch data loss logged (`train/loss`)
    verdict: str | None
    final_state: str | None
    time_in_state: dict[str, float] = field(default_factory=dict)  # state -> fraction of judged steps
    weight_norm: tuple[float | None, float | None] = (None, None)  # first and last logged ‖θ‖
    small_fraction: float | None = None  # last `reg/small_fraction` (|θ| < 1e-3)
    sparsity: float | None = None  # last `reg/sparsity` (exactly 0; L1 runs)
    test_acc: float | None = None
    trained_minutes: float | None = None  # the run's own training time, pauses left out (`run_time.run_seconds`)
    ms_per_step: float | None = None  # that time per step reached (wall ms on one core, other work included)
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # for the figure

    def meets(self, criterion: str) -> bool | None:
        """Did the average loss (with the penalty) ever pass the post's threshold? None without a value."""
        if self.max_objective_avg is None:
            return None
        return self.max_objective_avg > CRITERIA[criterion] or math.isinf(self.max_objective_avg)


def extreme(history: list[tuple[int, float]], how: Any) -> float | None:
    values = [v for _, v in history if not math.isnan(v)]
    return how(values) if values else None


def read_long_run(mlflow_client: Any, found: tuple[str, str, str], run: Any) -> LongRun:
    """The run of job `found` (block, arm, seed)."""
    rid, metrics, tags = run.info.run_id, run.data.metrics, run.data.tags
    keys = ("train/objective_avg", "train/loss_avg", "train/loss", "reg/weight_norm")
    history = {k: metric_history(mlflow_client, rid, k) for k in keys}
    last = {k: stored_value(v) for k, v in metrics.items()}
    steps = max((s for s, _ in history["train/loss"]), default=-1) + 1
    norms = history["reg/weight_norm"]
    seconds = run_seconds(mlflow_client, run)
    return LongRun(*found, run_id=rid, status=run.info.status, horizon=int(run.data.params.get("trainer.max_steps", 0)),
                   steps=steps, max_objective_avg=extreme(history["train/objective_avg"], max),
                   last_objective_avg=last.get("train/objective_avg"),
                   max_loss_avg=extreme(history["train/loss_avg"], max), max_loss=extreme(history["train/loss"], max),
                   verdict=tags.get("health.verdict"), final_state=tags.get("health.final_state"),
                   time_in_state={s: last[f"health/frac_{s}"] for s in STATES if f"health/frac_{s}" in last},
                   weight_norm=(norms[0][1] if norms else None, norms[-1][1] if norms else None),
                   small_fraction=last.get("reg/small_fraction"), sparsity=last.get("reg/sparsity"),
                   test_acc=last.get("test/acc"), trained_minutes=round(seconds / 60.0, 1),
                   ms_per_step=round(1000.0 * seconds / steps, 2) if steps > 0 else None, history=history)


def long_runs(mlflow_client: Any, experiment: str) -> list[LongRun]:
    """The newest run of every (block, arm, seed) of the long blocks, in block, arm, seed order."""
    newest = newest_runs(mlflow_client, experiment)
    return [read_long_run(mlflow_client, job, newest[job]) for job in sorted(newest) if job[0] in LONG_BLOCKS]


def as_dict(run: LongRun) -> dict[str, Any]:
    """A run's numbers for study.json (the history left out)."""
    return {k: v for k, v in run.__dict__.items() if k != "history"} | {
        f"meets_{c}": run.meets(c) for c in CRITERIA}


def figure(runs: list[LongRun], path: Path) -> Path | None:
    """Average loss (with the penalty), ‖θ‖ of the penalized weights over the steps, one line per run."""
    if not runs:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for run in runs:
        label = f"{run.block} {run.arm} s{run.seed}"
        for ax, key in zip(axes, ("train/objective_avg", "reg/weight_norm"), strict=True):
            points = [(s, v) for s, v in run.history.get(key, []) if math.isfinite(v) and v > 0]
            if points:
                ax.plot(*zip(*points, strict=True), label=label, linewidth=0.8)
    for ax, title in zip(axes, ("average loss + penalty (nats, log)", "‖θ‖ of the penalized weights (log)"),
                         strict=True):
        ax.set_yscale("log")
        ax.set_xlabel("optimizer step")
        ax.set_title(title)
    for threshold in CRITERIA.values():
        axes[0].axhline(threshold, color="grey", linestyle=":", linewidth=0.8)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
