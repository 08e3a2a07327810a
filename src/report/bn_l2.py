"""L2 x batch norm over the long horizon (study2 block `bn_l2_vgg19`): ‖W‖, the effective learning rate, sharpness
and the loss, per λ.

Every conv of VGG-19-bn is followed by batch norm, so its output does not change when its weights are scaled:
L2 then acts only on ‖W‖, and a smaller ‖W‖ raises the step's effect, η/‖W‖² (the effective learning rate; van
Laarhoven 2017). Read from each run's per-layer `weight_norm/<layer>` (‖θ‖ of the conv, its bias included: the
bias is < 1% of it here and irrelevant under batch norm): the median over the 16 convs of ‖W‖ and of η/‖W‖² at
each logged step. Sharpness: `sharpness/lambda_max` (logged only when the Lanczos probe converged) against 2/η.
Loss spikes: logged steps whose mean loss since the previous logged step (`train/loss_avg`, nats) is above
`SPIKE_FACTOR` times the median of the `SPIKE_WINDOW` logged values before it and `SPIKE_MIN_RISE` nats above it.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from src.report.study_read import newest_runs
from src.report.table import metric_history

BLOCK = "bn_l2_vgg19"
SPIKE_FACTOR = 3.0  # a spike: the window's mean loss above 3x the median of the windows before it ...
SPIKE_MIN_RISE = 0.1  # ... and at least 0.1 nats above it (so noise around a near-zero loss is not a spike)
SPIKE_WINDOW = 10  # the 10 logged windows before (100 steps at log_every_n_steps 10)


@dataclass
class BnL2Run:
    arm: str
    seed: str
    run_id: str
    lr: float
    strength: float  # λ (0 for `none`)
    momentum: float  # β of SGD
    steps: int
    conv_norm: list[tuple[int, float]] = field(default_factory=list)  # median ‖W‖ over the convs
    effective_lr: list[tuple[int, float]] = field(default_factory=list)  # median η/‖W‖² over the convs
    sharpness: list[tuple[int, float]] = field(default_factory=list)  # converged λ_max probes
    loss: list[tuple[int, float]] = field(default_factory=list)  # train/loss_avg
    spikes: list[int] = field(default_factory=list)  # steps of the loss spikes
    test_acc: float | None = None
    verdict: str | None = None

    def summary(self) -> dict[str, Any]:
        """The run's decisive numbers for study.json."""
        first = lambda xs: xs[0][1] if xs else None  # noqa: E731
        last = lambda xs: xs[-1][1] if xs else None  # noqa: E731
        return {"arm": self.arm, "seed": self.seed, "run_id": self.run_id, "lambda": self.strength, "steps": self.steps,
                "equilibrium_steps": (1 - self.momentum) / (2 * self.lr * self.strength) if self.strength else None,
                "cumulative_decay": 2 * self.lr * self.strength * self.steps / (1 - self.momentum),
                "conv_norm_first": first(self.conv_norm), "conv_norm_last": last(self.conv_norm),
                "effective_lr_first": first(self.effective_lr), "effective_lr_last": last(self.effective_lr),
                "effective_lr_max": max((v for _, v in self.effective_lr), default=None),
                "effective_lr_rise": (max(v for _, v in self.effective_lr) / self.effective_lr[0][1]
                                      if self.effective_lr and self.effective_lr[0][1] else None),
                "sharpness_max": max((v for _, v in self.sharpness), default=None), "two_over_lr": 2 / self.lr,
                "probes_converged": len(self.sharpness), "spikes": len(self.spikes),
                "final_loss_avg": last(self.loss), "test_acc": self.test_acc, "verdict": self.verdict}


def spikes(loss: list[tuple[int, float]]) -> list[int]:
    """Steps whose window loss jumps above the median of the windows before it (see the module's docstring)."""
    found = []
    for i in range(SPIKE_WINDOW, len(loss)):
        before = statistics.median(v for _, v in loss[i - SPIKE_WINDOW:i])
        step, value = loss[i]
        if not math.isfinite(value) or (value > SPIKE_FACTOR * before and value > before + SPIKE_MIN_RISE):
            found.append(step)
    return found


def conv_layers(metric_keys: list[str]) -> list[str]:
    return sorted(k for k in metric_keys if k.startswith("weight_norm/") and ".features." in k)


def read_run(mlflow_client: Any, run: Any, arm: str, seed: str) -> BnL2Run:
    rid, params = run.info.run_id, run.data.params
    lr, strength = float(params["optim.lr"]), float(params.get("reg.l2.strength", 0.0) or 0.0)
    momentum = float(params.get("optim.momentum", 0.0) or 0.0)
    per_layer = [dict(metric_history(mlflow_client, rid, k)) for k in conv_layers(list(run.data.metrics))]
    steps = sorted(set().union(*per_layer)) if per_layer else []
    norms = [(s, statistics.median(layer[s] for layer in per_layer if s in layer)) for s in steps]
    effective = [(s, statistics.median(lr / layer[s] ** 2 for layer in per_layer if s in layer and layer[s] > 0))
                 for s in steps]
    loss = metric_history(mlflow_client, rid, "train/loss_avg")
    return BnL2Run(arm, seed, rid, lr, strength, momentum, steps=(steps[-1] + 1) if steps else 0, conv_norm=norms,
                   effective_lr=effective, sharpness=metric_history(mlflow_client, rid, "sharpness/lambda_max"),
                   loss=loss, spikes=spikes(loss), test_acc=run.data.metrics.get("test/acc"),
                   verdict=run.data.tags.get("health.verdict"))


def bn_l2_runs(mlflow_client: Any, experiment: str) -> list[BnL2Run]:
    """The newest run of every (arm, seed) of the block, by λ then seed."""
    runs = [read_run(mlflow_client, run, arm, seed)
            for (block, arm, seed), run in newest_runs(mlflow_client, experiment).items() if block == BLOCK]
    return sorted(runs, key=lambda r: (r.strength, r.seed))


def figure(runs: list[BnL2Run], path: Path) -> Path | None:
    """Four panels over the steps: median conv ‖W‖, median η/‖W‖², converged λ_max (with 2/η), the loss."""
    if not runs:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(18, 4))
    colors = {s: f"C{i}" for i, s in enumerate(sorted({r.strength for r in runs}))}
    for run in runs:
        style = dict(color=colors[run.strength], linewidth=0.9, linestyle="-" if run.seed == "0" else "--",
                     label=f"λ {run.strength:g} s{run.seed}")
        for ax, series in zip(axes, (run.conv_norm, run.effective_lr, run.sharpness, run.loss), strict=True):
            points = [(s, v) for s, v in series if math.isfinite(v) and v > 0]
            if points:
                ax.plot(*zip(*points, strict=True), **style, marker="." if series is run.sharpness else None)
        for step in run.spikes:
            axes[3].axvline(step, color=colors[run.strength], alpha=0.3, linewidth=0.6)
    axes[2].axhline(2 / runs[0].lr, color="grey", linestyle=":", linewidth=0.8)
    titles = ("median conv ‖W‖", "median η/‖W‖² (effective lr)", "λ_max (converged probes); 2/η dotted",
              "mean loss per 10 steps (nats); spikes")
    for ax, title in zip(axes, titles, strict=True):
        ax.set_yscale("log")
        ax.set_xlabel("optimizer step")
        ax.set_title(title, fontsize=9)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
