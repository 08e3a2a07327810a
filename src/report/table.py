"""The comparison table of a sweep: which runs, grouped how, and every figure read from MLflow.

A *group* is one combination of the sweep's axes other than the seed: model x regularizer x
optimizer (x any other override that varies). Its figures come from the runs' MLflow records:

- outcome: the `outcome` tag (`completed`, `diverged`, `failed`, `interrupted`), or the MLflow
  status for runs without one (`running` while a job still trains);
- test accuracy: the last `test/acc`, mean ± sample std over the runs that have one;
- max global gradient norm: the largest `grad/global_norm` over all logged steps of all runs;
- min first/last ratio: the smallest `grad/first_last_ratio` over all steps of all runs;
- verdict: the runs' `health.verdict` tags counted (`healthy 2, stalled 1`): each run's first sustained
  problem, or healthy;
- first event step: the earliest `health.first_event_step` tag of its runs;
- events: the final `events/<kind>` counts (running counts) summed over its runs.

Anything a run did not log (no gradient monitor, stopped before testing) is `None`, shown "—".
Plots live in `src/report/plots.py`; the command line in `scripts/report.py`.
"""

from __future__ import annotations

import math
import statistics
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from src.tracking.client import search_all_runs

MISSING = "—"
AXES = {"seed", "model", "reg", "optim", "study/model", "study/arm"}  # the table's own columns (and seeds)
STATUS_OUTCOME = {"RUNNING": "running", "SCHEDULED": "running", "FAILED": "failed", "KILLED": "interrupted"}


@dataclass
class RunRecord:
    """What the report needs from one MLflow run."""

    run_id: str
    name: str
    status: str
    outcome: str
    model: str
    reg: str
    optim: str
    seed: str
    overrides: list[str]
    metrics: dict[str, float]  # last logged value of every metric
    tags: dict[str, str]

    @classmethod
    def from_run(cls, run: Any) -> RunRecord:
        tags, params = run.data.tags, run.data.params
        status = run.info.status
        return cls(
            run_id=run.info.run_id,
            name=run.info.run_name or run.info.run_id,
            status=status,
            outcome=tags.get("outcome") or STATUS_OUTCOME.get(status, status.lower()),
            model=tags.get("choice.model") or params.get("model._target_", "?").rsplit(".", 1)[-1],
            reg=tags.get("reg", "none"),
            optim=tags.get("choice.optim") or params.get("optim._target_", "?").rsplit(".", 1)[-1].lower(),
            seed=params.get("seed", "?"),
            overrides=tags.get("overrides", "").split(),
            metrics={k: stored_value(v) for k, v in run.data.metrics.items()},
            tags=dict(tags),
        )


@dataclass
class Row:
    """One line of the table: a combination of the sweep's axes, over its seeds."""

    model: str
    reg: str
    optim: str
    variant: str
    runs: list[RunRecord] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    test_acc: list[float] = field(default_factory=list)
    max_grad_norm: float | None = None
    min_first_last_ratio: float | None = None
    first_event_step: int | None = None
    events: Counter[str] = field(default_factory=Counter)
    verdicts: Counter[str] = field(default_factory=Counter)

    @property
    def label(self) -> str:
        """Regularizer + optimizer (+ variant): a plot legend entry."""
        return " ".join(x for x in (f"{self.reg}+{self.optim}", self.variant) if x)

    @property
    def test_acc_mean(self) -> float | None:
        return statistics.fmean(self.test_acc) if self.test_acc else None

    @property
    def test_acc_std(self) -> float | None:
        return statistics.stdev(self.test_acc) if len(self.test_acc) > 1 else None


def override_key(override: str) -> str:
    """`+study/arm=l1_adam` -> `study/arm`."""
    return override.split("=", 1)[0].lstrip("+~")


def shared_overrides(records: list[RunRecord]) -> list[str]:
    """Overrides every run has (the sweep's fixed settings), in the first run's order."""
    if not records:
        return []
    common = set(records[0].overrides).intersection(*(r.overrides for r in records[1:]))
    return [o for o in records[0].overrides if o in common]


def variant(record: RunRecord, shared: set[str]) -> str:
    """The run's overrides that vary across the selection and are not a table column or the seed."""
    return " ".join(o for o in record.overrides if o not in shared and override_key(o) not in AXES)


def stored_value(value: float) -> float:
    """MLflow stores ±Inf as ±float max: give the infinity back."""
    return math.copysign(math.inf, value) if abs(value) >= sys.float_info.max else value


def metric_history(mlflow_client: Any, run_id: str, key: str) -> list[tuple[int, float]]:
    """Every logged (step, value) of one metric of one run, in step order (±Inf given back as such)."""
    history = sorted(mlflow_client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))
    return [(m.step, stored_value(m.value)) for m in history]


def history_values(mlflow_client: Any, run_id: str, key: str) -> list[float]:
    """Every logged value of one metric of one run, in step order."""
    return [value for _, value in metric_history(mlflow_client, run_id, key)]


def _max(values: list[float]) -> float | None:
    """Largest value; NaN is ignored, +Inf counts (an exploded norm is a finding, not noise)."""
    kept = [v for v in values if not math.isnan(v)]
    return max(kept) if kept else None


def _min(values: list[float]) -> float | None:
    kept = [v for v in values if not math.isnan(v)]
    return min(kept) if kept else None


def event_counts(record: RunRecord) -> Counter[str]:
    """Final `events/<kind>` counts; the `health.events` tag (`nonfinite:1,exploding:2`) when no metric."""
    counts = Counter({k.split("/", 1)[1]: int(v) for k, v in record.metrics.items() if k.startswith("events/")})
    if not counts and record.tags.get("health.events") not in (None, "", "none"):
        for part in record.tags["health.events"].split(","):
            kind, _, n = part.partition(":")
            if n.strip().isdigit():
                counts[kind.strip()] += int(n)
    return counts


def first_event_step(record: RunRecord) -> int | None:
    value = record.tags.get("health.first_event_step", "")
    return int(value) if value.strip().lstrip("-").isdigit() else None


def build_rows(mlflow_client: Any, runs: list[Any]) -> tuple[list[Row], list[str]]:
    """Group the runs into table rows (sorted by model, then `none` first); also return the shared overrides."""
    records = [RunRecord.from_run(r) for r in runs]
    shared = shared_overrides(records)
    rows: dict[tuple[str, str, str, str], Row] = {}
    for rec in sorted(records, key=lambda r: (r.seed, r.run_id)):
        key = (rec.model, rec.reg, rec.optim, variant(rec, set(shared)))
        row = rows.setdefault(key, Row(*key))
        row.runs.append(rec)
        row.outcomes[rec.outcome] += 1
        if "test/acc" in rec.metrics and not math.isnan(rec.metrics["test/acc"]):
            row.test_acc.append(rec.metrics["test/acc"])
        if "grad/global_norm" in rec.metrics:
            top = _max(history_values(mlflow_client, rec.run_id, "grad/global_norm"))
            row.max_grad_norm = _max([v for v in (row.max_grad_norm, top) if v is not None])
        if "grad/first_last_ratio" in rec.metrics:
            low = _min(history_values(mlflow_client, rec.run_id, "grad/first_last_ratio"))
            row.min_first_last_ratio = _min([v for v in (row.min_first_last_ratio, low) if v is not None])
        if rec.tags.get("health.verdict"):
            row.verdicts[rec.tags["health.verdict"]] += 1
        step = first_event_step(rec)
        if step is not None:
            row.first_event_step = step if row.first_event_step is None else min(row.first_event_step, step)
        row.events.update(event_counts(rec))
    ordered = sorted(rows.values(), key=lambda r: (r.model, r.reg != "none", r.reg, r.optim, r.variant))
    return ordered, shared


def fmt(value: float | None, digits: int = 3) -> str:
    """Numbers for the table: 3 significant digits, scientific when tiny or huge, "—" when missing."""
    if value is None:
        return MISSING
    if math.isinf(value) or math.isnan(value):
        return str(value)
    return f"{value:.{digits}g}"


def fmt_acc(row: Row) -> str:
    mean, std = row.test_acc_mean, row.test_acc_std
    if mean is None:
        return MISSING
    spread = f" ± {std:.3f}" if std is not None else ""
    return f"{mean:.3f}{spread} (n={len(row.test_acc)})"


def fmt_counts(counts: Counter[str]) -> str:
    shown = {k: v for k, v in sorted(counts.items()) if v}
    return ", ".join(f"{k} {v}" for k, v in shown.items()) if shown else MISSING


def markdown_table(rows: list[Row]) -> str:
    """The model x regularizer table as GitHub markdown."""
    with_variant = any(r.variant for r in rows)
    head = ["Model", "Regularizer", "Optimizer", *(["Variant"] if with_variant else []), "Runs", "Outcome",
            "Test acc (mean ± std)", "Verdict", "Max ‖g‖", "Min first/last", "First event step", "Events"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r.model, r.reg, r.optim, *([f"`{r.variant}`" if r.variant else ""] if with_variant else []),
                 str(len(r.runs)), fmt_counts(r.outcomes), fmt_acc(r), fmt_counts(r.verdicts), fmt(r.max_grad_norm),
                 fmt(r.min_first_last_ratio), MISSING if r.first_event_step is None else str(r.first_event_step),
                 fmt_counts(r.events) if r.events else MISSING]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def runs_table(rows: list[Row]) -> str:
    """Every run of the report, to find it in the UI."""
    lines = ["| Run | Seed | Status | Outcome | Test acc | Run id |", "|---|---|---|---|---|---|"]
    for row in rows:
        for r in row.runs:
            acc = fmt(r.metrics.get("test/acc"))
            lines.append(f"| {r.name} | {r.seed} | {r.status} | {r.outcome} | {acc} | `{r.run_id}` |")
    return "\n".join(lines)


def sweep_runs(mlflow_client: Any, sweep_id: str) -> tuple[Any | None, list[Any]]:
    """(parent run or None, job runs) of one sweep, from any experiment of the store."""
    runs = search_all_runs(mlflow_client, f"tags.sweep_id = '{sweep_id}'")
    parents = [r for r in runs if r.data.tags.get("sweep_role") == "parent"]
    return (parents[0] if parents else None), [r for r in runs if r.data.tags.get("sweep_role") != "parent"]


def latest_sweep_id(mlflow_client: Any) -> str | None:
    """The sweep whose parent run started last."""
    parents = search_all_runs(mlflow_client, "tags.sweep_role = 'parent'")
    return max(parents, key=lambda r: r.info.start_time).data.tags["sweep_id"] if parents else None
