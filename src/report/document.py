"""A report as files: select the runs (a sweep, an experiment, chosen ids), then write `report.md`,
`report.json` and the figures into a folder."""

from __future__ import annotations

import argparse
import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from src.report import plots
from src.report.dashboard import FILE_NAME, log_dashboard, write_dashboard
from src.report.table import (
    INSTRUMENTS,
    Row,
    build_rows,
    latest_sweep_id,
    markdown_table,
    runs_table,
    sweep_runs,
)
from src.tracking.client import search_all_runs


def select(mlflow_client: Any, args: argparse.Namespace) -> tuple[str, Any | None, list[Any], str]:
    """(report id, sweep parent run or None, runs, one-line description of the selection)."""
    if args.runs:
        runs = [mlflow_client.get_run(run_id) for run_id in args.runs]
        parents = {r.data.tags.get("mlflow.parentRunId") for r in runs}
        parent = mlflow_client.get_run(parents.pop()) if len(parents) == 1 and None not in parents else None
        digest = hashlib.sha1(" ".join(sorted(args.runs)).encode()).hexdigest()[:8]
        return f"runs-{digest}", parent, runs, f"{len(runs)} runs given by id"
    if args.experiment:
        exp = mlflow_client.get_experiment_by_name(args.experiment)
        if exp is None:
            raise SystemExit(f"no MLflow experiment named {args.experiment!r} in {mlflow_client.tracking_uri}")
        runs = search_all_runs(mlflow_client, "", [exp.experiment_id])
        jobs = [r for r in runs if r.data.tags.get("sweep_role") != "parent"]
        return args.experiment, None, jobs, f"experiment `{args.experiment}` (all its runs)"
    sweep_id = args.sweep or latest_sweep_id(mlflow_client)
    if sweep_id is None:
        raise SystemExit(f"no sweep in {mlflow_client.tracking_uri}; run one with `python -m src.train -m ...`")
    parent, runs = sweep_runs(mlflow_client, sweep_id)
    if parent is None and not runs:
        raise SystemExit(f"no sweep {sweep_id!r} in {mlflow_client.tracking_uri}")
    return sweep_id, parent, runs, f"sweep `{sweep_id}`"


def interval_record(interval: Any) -> dict[str, Any] | None:
    return None if interval is None else {"estimate": interval.estimate, "lo": interval.lo, "hi": interval.hi,
                                          "n": interval.n}


def row_record(row: Row) -> dict[str, Any]:
    """The figures of one table row, machine-readable (None = not measured)."""
    return {
        "model": row.model, "reg": row.reg, "optim": row.optim, "variant": row.variant,
        "settings": dict(row.settings), "n": len(row.runs),
        "run_ids": [r.run_id for r in row.runs], "seeds": [r.seed for r in row.runs], "outcomes": dict(row.outcomes),
        "test_acc": row.test_acc, "test_acc_mean": row.test_acc_mean, "test_acc_std": row.test_acc_std,
        "test_acc_interval": interval_record(row.test_acc_interval),
        "max_grad_norm": row.max_grad_norm, "min_first_last_ratio": row.min_first_last_ratio,
        "instruments": {name: interval_record(row.instrument(name)) for name in INSTRUMENTS},
        "time_in_state": row.time_in_state,
        "first_event_step": row.first_event_step, "events": dict(row.events), "verdicts": dict(row.verdicts),
        "final_states": dict(row.final_states),
    }


def write_report(mlflow_client: Any, report_id: str, parent: Any | None, runs: list[Any], what: str,
                 out_dir: Path, command: str) -> Path:
    """Table, figures and `report.md` into `out_dir`; returns the markdown file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, shared = build_rows(mlflow_client, runs)
    figures = {
        "global_grad_norm.png": plots.metric_over_steps(
            mlflow_client, rows, "grad/global_norm", out_dir / "global_grad_norm.png", "global gradient norm"),
        "train_loss.png": plots.metric_over_steps(
            mlflow_client, rows, "train/loss", out_dir / "train_loss.png", "training loss (data term)"),
        "gradient_flow.png": plots.gradient_flow(mlflow_client, rows, out_dir / "gradient_flow.png"),
    }
    write_dashboard(mlflow_client, rows, f"Gradient health: {what.replace('`', '')}", out_dir / FILE_NAME)
    (out_dir / "report.json").write_text(json.dumps({"id": report_id, "rows": [row_record(r) for r in rows]}, indent=1))
    lines = [f"# Report: {report_id}", "",
             f"{what} · {len(runs)} runs in {len(rows)} groups · store `{mlflow_client.tracking_uri}` · "
             f"generated {datetime.now():%Y-%m-%d %H:%M} by `{command}`", ""]
    if parent is not None:
        tags = parent.data.tags
        lines += [f"Sweep parent run `{parent.info.run_id}`: status {parent.info.status}, "
                  f"jobs {tags.get('sweep_jobs', '?')} ({tags.get('sweep_outcomes', 'not closed yet')}).", ""]
    if shared:
        lines += ["Settings shared by every run: `" + " ".join(shared) + "`", ""]
    lines += ["## Outcome and gradient health per model x regularizer", "", markdown_table(rows), "",
              "One row per configuration: every setting that varies across these runs except the seed "
              "(Setting: what tells rows of one model, regularizer and optimizer apart), so n counts seeds. "
              "Test acc: last `test/acc`, mean over seeds with a 95% t-interval on the logit scale (n = runs "
              "that reached the test). Final state: `health.final_state` counted (the state at the end). "
              "Time in state: mean fraction of judged steps healthy or in each event kind "
              "(`health/frac_*`). Min signal ratio (`signal/first_last_ratio`), max λ_max "
              "(`sharpness/lambda_max`): each run's extreme, geometric mean over seeds [95% CI]; max dead frac "
              "(`dead/max`): mean over seeds [95% CI]. "
              "Verdict: each run's `health.verdict` (its first sustained gradient-health problem, or healthy), "
              "counted over seeds. "
              "Max ‖g‖: largest data-gradient `grad/global_norm` logged; min first/last: smallest "
              "`grad/first_last_ratio` (first layer's relative data gradient ‖g‖/‖θ‖ over the last one's); "
              "first event step: earliest health event; "
              "events: detector counts summed over seeds. — : not measured (monitor off, or the run stopped "
              "before it).", "",
              "## Global gradient norm over training", "",
              "![global gradient norm](global_grad_norm.png)" if figures["global_grad_norm.png"]
              else "No run logged `grad/global_norm` (gradient monitor off?).", "",
              "## Training loss", "", "![training loss](train_loss.png)", "",
              "## Gradient flow: per-layer relative data gradient at four points of training", "",
              "![gradient flow](gradient_flow.png)" if figures["gradient_flow.png"]
              else "No run logged per-layer gradient metrics.", "",
              "Each run's own gradient-flow heatmap is an artifact of that run in MLflow.", "",
              f"The interactive gradient-health dashboard (timelines, layer x run heat maps, depth profiles): "
              f"[{FILE_NAME}]({FILE_NAME}) beside this file; on a sweep's parent run, `dashboard/{FILE_NAME}`.", "",
              "## Runs", "", runs_table(rows), ""]
    md = out_dir / "report.md"
    md.write_text("\n".join(lines))
    return md


def sweep_dashboard(mlflow_client: Any, sweep_id: str, out_dir: Path) -> str | None:
    """Make the sweep's dashboard from its job runs and log it on its parent run; its artifact path
    (None when the sweep has no parent or no job run)."""
    parent, runs = sweep_runs(mlflow_client, sweep_id)
    if parent is None or not runs:
        return None
    rows, _ = build_rows(mlflow_client, runs)
    path = write_dashboard(mlflow_client, rows, f"Gradient health: sweep {sweep_id}", out_dir / FILE_NAME)
    return log_dashboard(mlflow_client, parent.info.run_id, path)
