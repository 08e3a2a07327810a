"""The study's numbers: runs read from MLflow, grouped by condition x arm, each measure with its interval.

A study run is a job of one block (`experiment=study_<condition>`, conf/experiment/) with one arm
(`+study/arm=<arm>`, conf/study/arm/) and one seed; both are read from the run's `overrides` tag. When a
(condition, arm, seed) was run more than once (the study repeated), the latest run counts.

Per run, from its MLflow record:

| measure | source | reduced over the run | scale |
|---|---|---|---|
| verdict | tag `health.verdict` | — | fraction of seeds |
| steps to first event | tag `health.first_event_step` (runs with an event) | — | steps |
| final test accuracy | metric `test/acc` | last | fraction |
| min signal ratio | `signal/first_last_ratio` (‖∂L/∂z‖ first layer / last) | min over steps | log10 |
| max dead fraction | `dead/max` (largest dead-unit fraction of any layer) | max over steps | fraction |
| max λ_max·η/2 | `sharpness/stability` (> 1: past the 2/η stability edge) | max over steps | log10 |
| min gradient first/last | `grad/first_last_ratio` (relative data gradient ‖g‖/‖θ‖) | min over steps | log10 |
| max gradient norm | `grad/global_norm` (data gradient) | max over steps | log10 |
| max training loss | `train/loss` (the data term; the blog post's "vanished" > 100, "exploded" > 1e4) | max | log10 |

The signal, dead-unit and sharpness measures come from the instruments; a run without them gives None
(the report shows "—"). Intervals: `src/report/intervals.py`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from src.report import intervals as iv
from src.report.table import metric_history, stored_value
from src.tracking.client import search_all_runs

HEALTHY = "healthy"


@dataclass(frozen=True)
class Measure:
    key: str  # MLflow metric key
    label: str
    reduce: str  # "min", "max" or "last" over the run's logged steps
    log: bool  # summarize on log10 (geometric mean; the difference is a factor)


MEASURES = (
    Measure("test/acc", "final test acc", "last", False),
    Measure("signal/first_last_ratio", "min signal ratio", "min", True),
    Measure("dead/max", "max dead fraction", "max", False),
    Measure("sharpness/stability", "max λ_max·η/2", "max", True),
    Measure("grad/first_last_ratio", "min grad first/last", "min", True),
    Measure("grad/global_norm", "max ‖g‖", "max", True),
    Measure("train/loss", "max train loss", "max", True),
)
FIRST_EVENT = "first_event_step"
DOSE = re.compile(r"^(l1|l2|l2dec|en)_(\d+(?:\.\d+)?e-?\d+)$")
DROPOUT = re.compile(r"^dropout_p(\d)(\d)$")
FAMILIES = {"l1": "L1", "l2": "L2 (penalty)", "l2dec": "L2 (decoupled)", "en": "Elastic Net", "dropout": "Dropout"}


def arm_family(arm: str) -> tuple[str, float | None]:
    """(family, dose): ("l1", 1e-4), ("dropout", 0.3), ("none", 0.0), or ("remedy", None)."""
    if arm == "none":
        return "none", 0.0
    if m := DOSE.match(arm):
        return m.group(1), float(m.group(2))
    if m := DROPOUT.match(arm):
        return "dropout", float(f"{m.group(1)}.{m.group(2)}")
    return "remedy", None


def arm_order(arm: str) -> tuple[int, str, float]:
    """none first, then the regularizers by family and dose, then the remedies by name."""
    family, dose = arm_family(arm)
    rank = ["none", *FAMILIES, "remedy"].index(family)
    return rank, arm if family == "remedy" else "", dose or 0.0


@dataclass
class StudyRun:
    run_id: str
    condition: str
    arm: str
    seed: str
    start_time: int
    verdict: str | None
    first_event_step: int | None
    values: dict[str, float | None]  # measure key -> reduced value (None: not logged)
    seconds: float | None = None  # the run's own wall time (MLflow start to end), None while it runs


def study_labels(overrides: list[str]) -> tuple[str, str] | None:
    """(condition, arm) from a job's overrides, None when it is not a study run."""
    found = dict(o.lstrip("+").split("=", 1) for o in overrides if "=" in o)
    experiment, arm = found.get("experiment", ""), found.get("study/arm")
    if not experiment.startswith("study_") or arm is None:
        return None
    return experiment.removeprefix("study_"), arm


def reduce(values: list[float], how: str) -> float | None:
    kept = [v for v in values if not math.isnan(v)]
    if not kept:
        return None
    return {"min": min, "max": max, "last": lambda v: v[-1]}[how](kept)


def read_run(mlflow_client: Any, run: Any) -> StudyRun | None:
    """One run's study record, or None when the run is not a study job."""
    tags, metrics = run.data.tags, run.data.metrics
    labels = study_labels(tags.get("overrides", "").split())
    if labels is None:
        return None
    values: dict[str, float | None] = {}
    for m in MEASURES:
        if m.key not in metrics:
            values[m.key] = None
        elif m.reduce == "last":
            values[m.key] = stored_value(metrics[m.key])
        else:
            values[m.key] = reduce([v for _, v in metric_history(mlflow_client, run.info.run_id, m.key)], m.reduce)
    step = tags.get("health.first_event_step", "")
    return StudyRun(run.info.run_id, *labels, seed=run.data.params.get("seed", "?"), start_time=run.info.start_time,
                    verdict=tags.get("health.verdict") or None,
                    first_event_step=int(step) if step.strip().lstrip("-").isdigit() else None, values=values,
                    seconds=(run.info.end_time - run.info.start_time) / 1000 if run.info.end_time else None)


def latest_per_seed(runs: list[StudyRun]) -> list[StudyRun]:
    """One run per (condition, arm, seed): the one that started last."""
    kept: dict[tuple[str, str, str], StudyRun] = {}
    for r in sorted(runs, key=lambda r: r.start_time):
        kept[(r.condition, r.arm, r.seed)] = r
    return list(kept.values())


@dataclass
class Cell:
    """One condition x arm over its seeds, with intervals and the differences from `none`."""

    condition: str
    arm: str
    runs: list[StudyRun] = field(default_factory=list)
    verdicts: Counter[str] = field(default_factory=Counter)
    verdict_share: dict[str, iv.Interval] = field(default_factory=dict)  # kind -> fraction of seeds (Wilson)
    unhealthy_vs_none: iv.Interval | None = None  # Δ fraction of seeds not healthy (Newcombe)
    summary: dict[str, iv.Interval | None] = field(default_factory=dict)  # measure -> mean (t) / geometric mean
    vs_none: dict[str, iv.Interval | None] = field(default_factory=dict)  # measure -> Δ (Welch; log10 for log ones)

    def samples(self, key: str, log: bool = False) -> list[float]:
        """The seeds' values of one measure (or of the first-event step), missing ones left out."""
        if key == FIRST_EVENT:
            raw = [float(r.first_event_step) for r in self.runs if r.first_event_step is not None]
        else:
            raw = [v for r in self.runs if (v := r.values.get(key)) is not None and not math.isnan(v)]
        return iv.log10_values(raw) if log else [v for v in raw if math.isfinite(v)]

    @property
    def unhealthy(self) -> int:
        return sum(n for kind, n in self.verdicts.items() if kind != HEALTHY)


def summarize(cell: Cell, none: Cell | None) -> None:
    """Fill the cell's intervals, and its differences from the condition's `none` cell (when there is one)."""
    judged = sum(cell.verdicts.values())
    cell.verdict_share = {kind: iv.wilson(n, judged) for kind, n in sorted(cell.verdicts.items())}
    if none is not None and cell is not none:
        cell.unhealthy_vs_none = iv.newcombe_difference(cell.unhealthy, judged, none.unhealthy,
                                                        sum(none.verdicts.values()))
    for key, log in [(m.key, m.log) for m in MEASURES] + [(FIRST_EVENT, False)]:
        mine = cell.samples(key, log)
        cell.summary[key] = iv.geometric(iv.t_interval(mine)) if log else iv.t_interval(mine)
        if none is not None and cell is not none:
            cell.vs_none[key] = iv.welch_difference(mine, none.samples(key, log))


def build_cells(runs: list[StudyRun]) -> list[Cell]:
    """The study's cells in condition order (as first seen, sorted by name) and arm order (none first)."""
    cells: dict[tuple[str, str], Cell] = {}
    for r in latest_per_seed(runs):
        cell = cells.setdefault((r.condition, r.arm), Cell(r.condition, r.arm))
        cell.runs.append(r)
        if r.verdict:
            cell.verdicts[r.verdict] += 1
    for cell in cells.values():
        summarize(cell, cells.get((cell.condition, "none")))
    return sorted(cells.values(), key=lambda c: (c.condition, arm_order(c.arm)))


def study_runs(mlflow_client: Any, experiment: str) -> list[StudyRun]:
    """Every finished or running job of the study's MLflow experiment, as study records."""
    exp = mlflow_client.get_experiment_by_name(experiment)
    if exp is None:
        raise SystemExit(f"no MLflow experiment named {experiment!r} in {mlflow_client.tracking_uri}")
    runs = search_all_runs(mlflow_client, "", [exp.experiment_id])
    records = [read_run(mlflow_client, r) for r in runs if r.data.tags.get("sweep_role") != "parent"]
    return [r for r in records if r is not None]
