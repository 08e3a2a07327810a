"""The comparison table of a sweep: which runs, grouped how, and every figure read from MLflow.

A *row* is one combination of every setting that varies across the selected runs except the seed
(`src/report/records.py`): model x regularizer x optimizer x any other setting that differs (a dose,
a learning rate, a study arm's content). Runs that differ in anything but the seed never share a row,
so a spread is always a spread over seeds; `n` says how many. Its figures come from the runs' MLflow
records:

- outcome: the `outcome` tag (`completed`, `diverged`, `failed`, `interrupted`), or the MLflow
  status for runs without one (`running` while a job still trains);
- test accuracy: the last `test/acc`, mean over the runs that have one with a 95% t-interval on the
  logit scale (it stays inside [0, 1]);
- max global gradient norm: the largest `grad/global_norm` over all logged steps of all runs;
- min first/last ratio: the smallest `grad/first_last_ratio` over all steps of all runs;
- instruments, each run's extreme over its steps, then the geometric mean over seeds with its 95%
  interval: min back-propagated signal ratio `signal/first_last_ratio`, max `sharpness/lambda_max`;
  max dead-unit fraction `dead/max` (mean over seeds);
- time in each state: `health/frac_<state>` (fraction of judged steps spent healthy or in each event
  kind), the mean over seeds;
- verdict: the runs' `health.verdict` tags counted (`healthy 2, stalled 1`); final state: their
  `health.final_state` tags (the state at the end of training) counted;
- first event step: the earliest `health.first_event_step` tag of its runs;
- events: the final `events/<kind>` counts (running counts) summed over its runs.

Anything a run did not log (no gradient monitor, stopped before testing) is `None`, shown "—".
Plots live in `src/report/plots.py`, the dashboard in `src/report/dashboard.py`; the command line in
`scripts/report.py`.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from src.report.intervals import Interval, geometric, log10_values, logit_interval, t_interval
from src.report.records import (
    RunRecord,
    history_values,
    metric_history,
    setting_label,
    shared_overrides,
    sort_value,
    stored_value,
    varying_settings,
)
from src.tracking.client import search_all_runs

__all__ = ["MISSING", "Row", "RunRecord", "build_rows", "markdown_table", "metric_history", "runs_table",
           "stored_value"]

MISSING = "—"
HEAD = ("model", "reg", "optim")  # the table's own columns
STATE_PREFIX = "health/frac_"  # fraction of judged steps in each state (healthy or an event kind)
INSTRUMENTS = {  # row attribute: (metric key, extreme over a run's steps, summary over seeds)
    "signal_ratio": ("signal/first_last_ratio", min, "geometric"),
    "dead_max": ("dead/max", max, "mean"),
    "sharpness_max": ("sharpness/lambda_max", max, "geometric"),
}


@dataclass
class Row:
    """One line of the table: one combination of the varying settings, over its seeds."""

    model: str
    reg: str
    optim: str
    settings: tuple[tuple[str, str | None], ...]  # (key, value) of every varying setting but the seed
    variant: str = ""  # what tells it apart from rows with the same model, regularizer and optimizer
    runs: list[RunRecord] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    test_acc: list[float] = field(default_factory=list)
    max_grad_norm: float | None = None
    min_first_last_ratio: float | None = None
    first_event_step: int | None = None
    events: Counter[str] = field(default_factory=Counter)
    verdicts: Counter[str] = field(default_factory=Counter)
    final_states: Counter[str] = field(default_factory=Counter)  # `health.final_state`: the state at the end
    instruments: dict[str, list[float]] = field(default_factory=dict)  # per run's extreme, by INSTRUMENTS key
    state_fractions: dict[str, list[float]] = field(default_factory=dict)  # state -> one value per run

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

    @property
    def test_acc_interval(self) -> Interval | None:
        """The mean accuracy with a 95% t-interval taken on the logit scale, so that it stays inside [0, 1]."""
        return logit_interval(self.test_acc)

    def instrument(self, name: str) -> Interval | None:
        """The seeds' summary of one instrument (geometric or arithmetic mean with its 95% interval)."""
        values = self.instruments.get(name, [])
        if INSTRUMENTS[name][2] == "geometric":
            return geometric(t_interval(log10_values(values)))
        return t_interval(values)

    @property
    def time_in_state(self) -> dict[str, float]:
        """Mean fraction of judged steps in each state over the runs that logged it."""
        return {s: statistics.fmean(v) for s, v in sorted(self.state_fractions.items()) if v}


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


def label_variants(rows: list[Row]) -> None:
    """Each row's `variant`: the settings that differ between rows of the same model, regularizer and optimizer."""
    for head in {(r.model, r.reg, r.optim) for r in rows}:
        same = [r for r in rows if (r.model, r.reg, r.optim) == head]
        keys = [k for k, _ in same[0].settings if len({dict(r.settings)[k] for r in same}) > 1]
        for row in same:
            values = dict(row.settings)
            row.variant = " ".join(dict.fromkeys(setting_label(k, values[k]) for k in keys))


def add_run(mlflow_client: Any, row: Row, rec: RunRecord) -> None:
    """One run's figures into its row."""
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
    for name, (key, extreme, _) in INSTRUMENTS.items():
        if key in rec.metrics:
            values = [v for v in history_values(mlflow_client, rec.run_id, key) if not math.isnan(v)]
            if values:
                row.instruments.setdefault(name, []).append(extreme(values))
    for key, value in rec.metrics.items():
        if key.startswith(STATE_PREFIX) and not math.isnan(value):
            row.state_fractions.setdefault(key[len(STATE_PREFIX):], []).append(value)
    if rec.tags.get("health.verdict"):
        row.verdicts[rec.tags["health.verdict"]] += 1
    if rec.tags.get("health.final_state"):
        row.final_states[rec.tags["health.final_state"]] += 1
    step = first_event_step(rec)
    if step is not None:
        row.first_event_step = step if row.first_event_step is None else min(row.first_event_step, step)
    row.events.update(event_counts(rec))


def build_rows(mlflow_client: Any, runs: list[Any]) -> tuple[list[Row], list[str]]:
    """Group the runs into table rows (sorted by model, then `none` first); also return the shared overrides.

    Rows are keyed by every varying setting but the seed, so no row mixes two configurations.
    """
    records = [RunRecord.from_run(r) for r in runs]
    varying = varying_settings(records)
    rows: dict[tuple, Row] = {}
    for rec in sorted(records, key=lambda r: (r.seed, r.run_id)):
        settings = tuple((k, rec.settings.get(k)) for k in varying)
        key = (rec.model, rec.reg, rec.optim, settings)
        add_run(mlflow_client, rows.setdefault(key, Row(*key)), rec)
    label_variants(list(rows.values()))
    ordered = sorted(rows.values(), key=lambda r: (r.model, r.reg != "none", r.reg, r.optim,
                                                   [sort_value(v) for _, v in r.settings]))
    return ordered, shared_overrides(records)


def fmt(value: float | None, digits: int = 3) -> str:
    """Numbers for the table: 3 significant digits, scientific when tiny or huge, "—" when missing."""
    if value is None:
        return MISSING
    if math.isinf(value) or math.isnan(value):
        return str(value)
    return f"{value:.{digits}g}"


def fmt_interval(interval: Interval | None, number: Any = fmt) -> str:
    """`0.912 [0.903, 0.921]`, the estimate alone when n < 2, "—" when nothing was measured."""
    if interval is None:
        return MISSING
    if interval.lo is None or interval.hi is None:
        return number(interval.estimate)
    return f"{number(interval.estimate)} [{number(interval.lo)}, {number(interval.hi)}]"


def fmt_acc(row: Row) -> str:
    """Test accuracy: mean [95% t-interval] (n = runs that reached the test)."""
    if not row.test_acc:
        return MISSING
    return f"{fmt_interval(row.test_acc_interval, lambda v: f'{v:.3f}')} (n={len(row.test_acc)})"


def fmt_runs(row: Row) -> str:
    """How many runs; a seed that appears twice (a repeated run of one configuration) is said, not hidden."""
    repeated = {s: n for s, n in Counter(r.seed for r in row.runs).items() if n > 1}
    return " ".join([str(len(row.runs)), *(f"(seed {s} ×{n})" for s, n in sorted(repeated.items()))])


def fmt_counts(counts: Counter[str]) -> str:
    shown = {k: v for k, v in sorted(counts.items()) if v}
    return ", ".join(f"{k} {v}" for k, v in shown.items()) if shown else MISSING


def fmt_states(fractions: dict[str, float]) -> str:
    """`healthy 0.80, vanishing 0.20` (mean fraction of judged steps)."""
    return ", ".join(f"{s} {v:.2f}" for s, v in fractions.items() if v > 0) or MISSING


COLUMNS = ["Runs", "Outcome", "Test acc (mean [95% CI])", "Verdict", "Final state", "Time in state",
           "Min signal ratio", "Max dead frac", "Max λ_max", "Max ‖g‖", "Min first/last", "First event step", "Events"]


def row_cells(r: Row) -> list[str]:
    """The figures of one row, in `COLUMNS` order."""
    return [fmt_runs(r), fmt_counts(r.outcomes), fmt_acc(r), fmt_counts(r.verdicts), fmt_counts(r.final_states),
            fmt_states(r.time_in_state),
            fmt_interval(r.instrument("signal_ratio")), fmt_interval(r.instrument("dead_max")),
            fmt_interval(r.instrument("sharpness_max")), fmt(r.max_grad_norm), fmt(r.min_first_last_ratio),
            MISSING if r.first_event_step is None else str(r.first_event_step), fmt_counts(r.events)]


def table_head(rows: list[Row]) -> list[str]:
    return ["Model", "Regularizer", "Optimizer", *(["Setting"] if any(r.variant for r in rows) else []), *COLUMNS]


def table_cells(rows: list[Row]) -> list[list[str]]:
    """Every row's cells under `table_head(rows)`."""
    with_variant = any(r.variant for r in rows)
    return [[r.model, r.reg, r.optim, *([r.variant] if with_variant else []), *row_cells(r)] for r in rows]


def markdown_table(rows: list[Row]) -> str:
    """The table as GitHub markdown: one row per configuration, the seeds folded in."""
    head = table_head(rows)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_cells(rows)]
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
