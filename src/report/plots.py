"""The report's figures (PNG, matplotlib's Agg backend: no display needed).

- `metric_over_steps`: one panel per model, one colour per regularizer, one line per seed, log scale,
  an x where a run that did not complete ends (used for `grad/global_norm` and `train/loss`);
- `gradient_flow`: per-layer relative data gradient ‖g‖/‖θ‖ (forward order) at a few points of training,
  one panel per model x regularizer side by side, from the group's first seed. Read from the run's
  per-step `health/` record (`src/monitor/record.py`, every step) when it has one, else from its
  `grad_rel/<NN>.<layer>` metrics, else (runs older than the record) `grad_norm/<NN>.<layer>`.
"""

from __future__ import annotations

import math
import re
import tempfile
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from src.monitor.record import download_record  # noqa: E402
from src.report.records import metric_history  # noqa: E402
from src.report.table import Row  # noqa: E402

LAYER_PREFIXES = {"grad_rel/": "‖g‖/‖θ‖ per layer (data)", "grad_norm/": "‖∇W‖ per layer"}  # preferred first
FLOW_POINTS = 4  # points in training shown in the gradient-flow panels


def history(mlflow_client: Any, run_id: str, key: str) -> list[tuple[int, float]]:
    """(step, value) pairs of one metric, finite values only, in step order."""
    return [(s, v) for s, v in metric_history(mlflow_client, run_id, key) if math.isfinite(v)]


def _models(rows: list[Row]) -> list[str]:
    return list(dict.fromkeys(r.model for r in rows))


def metric_over_steps(mlflow_client: Any, rows: list[Row], key: str, path: Path, ylabel: str) -> bool:
    """One panel per model; returns whether any run had the metric (the PNG is written either way)."""
    models = _models(rows)
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 3.8), squeeze=False)
    colours = plt.get_cmap("tab10")
    labels = list(dict.fromkeys(r.label for r in rows))
    found = False
    for ax, model in zip(axes[0], models, strict=True):
        drawn = False
        for row in (r for r in rows if r.model == model):
            colour = colours(labels.index(row.label) % 10)
            for i, run in enumerate(row.runs):
                if key not in run.metrics:
                    continue
                points = history(mlflow_client, run.run_id, key)
                if not points:
                    continue
                steps, values = zip(*points, strict=True)
                ax.plot(steps, values, color=colour, alpha=0.85, lw=1.2, marker=".", ms=3,
                        label=row.label if i == 0 else None)
                if run.outcome != "completed":  # where a diverged, failed or running run's curve ends
                    ax.plot(steps[-1], values[-1], "x", color=colour, ms=8, mew=2)
                drawn = True
        if drawn:
            positive = any(line.get_ydata().min() > 0 for line in ax.get_lines())
            ax.set_yscale("log" if positive else "symlog")
            ax.legend(fontsize=7, loc="best")
            found = True
        else:
            ax.text(0.5, 0.5, f"no {key} logged", ha="center", va="center", transform=ax.transAxes, color="grey")
        ax.set_title(model)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return found


def layer_keys(metric_keys: Any) -> list[str]:
    """Per-layer keys in forward order (by the numeric prefix), of the first prefix of `LAYER_PREFIXES` present."""
    for prefix in LAYER_PREFIXES:
        keys = [k for k in metric_keys if k.startswith(prefix)]
        if keys:
            def order(key: str, prefix: str = prefix) -> tuple[int, str]:
                match = re.match(r"(\d+)", key[len(prefix):])
                return (int(match.group(1)) if match else 10**9, key)

            return sorted(keys, key=order)
    return []


def layer_name(key: str) -> str:
    """`grad_rel/03.features.10` -> `features.10`: the module's name, for an axis."""
    return re.sub(r"^\d+\.", "", key.split("/", 1)[-1])


def _picks(steps: list[int]) -> list[int]:
    return sorted({steps[round(i * (len(steps) - 1) / max(FLOW_POINTS - 1, 1))] for i in range(FLOW_POINTS)})


def flow_snapshots(mlflow_client: Any, run_id: str, keys: list[str]) -> dict[int, list[float]]:
    """{step: per-layer values of `keys`} at up to FLOW_POINTS steps spread over training (NaN = not measured):
    from the run's `health/` record when it has one (every step), else from the logged metrics."""
    with tempfile.TemporaryDirectory() as tmp:
        record = download_record(mlflow_client, run_id, tmp)
    if record is not None and all(k in record.columns for k in keys) and len(record):
        rows = record.set_index("step")
        return {step: [float(v) for v in rows.loc[step, keys]] for step in _picks(rows.index.tolist())}
    series = {k: dict(history(mlflow_client, run_id, k)) for k in keys}
    steps = sorted(set().union(*(s.keys() for s in series.values()))) if series else []
    if not steps:
        return {}
    return {step: [series[k].get(step, math.nan) for k in keys] for step in _picks(steps)}


def gradient_flow(mlflow_client: Any, rows: list[Row], path: Path) -> bool:
    """Rows of panels = models, columns = regularizers; returns whether any run had per-layer norms."""
    models = _models(rows)
    labels = list(dict.fromkeys(r.label for r in rows))
    fig, axes = plt.subplots(
        len(models), len(labels), figsize=(3.6 * len(labels), 3.0 * len(models)), squeeze=False
    )
    found = False
    for i, model in enumerate(models):
        for j, label in enumerate(labels):
            ax = axes[i][j]
            row = next((r for r in rows if r.model == model and r.label == label), None)
            run = next((r for r in (row.runs if row else []) if layer_keys(r.metrics)), None)
            if row is None:  # this combination is not in the selection
                ax.axis("off")
                continue
            ax.set_title(f"{model} · {label}", fontsize=8)
            if run is None:
                ax.text(0.5, 0.5, "no per-layer norms", ha="center", va="center", transform=ax.transAxes, color="grey")
                continue
            keys = layer_keys(run.metrics)
            snaps = flow_snapshots(mlflow_client, run.run_id, keys)
            cmap = plt.get_cmap("viridis")
            for k, (step, norms) in enumerate(snaps.items()):
                ax.plot(range(len(keys)), norms, color=cmap(k / max(len(snaps) - 1, 1)), lw=1, label=f"step {step}")
            if any(v > 0 for norms in snaps.values() for v in norms if math.isfinite(v)):
                ax.set_yscale("log")
            ax.set_xticks(range(len(keys)), [layer_name(k) for k in keys], rotation=90, fontsize=5)
            ax.set_xlabel(f"layer (input → output), seed {run.seed}", fontsize=7)
            ax.set_ylabel(next(v for p, v in LAYER_PREFIXES.items() if keys[0].startswith(p)), fontsize=7)
            ax.legend(fontsize=6)
            ax.grid(alpha=0.3, which="both")
            found = True
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return found
