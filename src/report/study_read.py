"""Study runs read from MLflow: one `StudyRun` per job, the measures reduced over its logged steps.

Per run, from its MLflow record:

| measure | source | reduced over the run | scale |
|---|---|---|---|
| verdict | tag `health.verdict` | — | fraction of seeds |
| steps to first event | tag `health.first_event_step` (runs with an event) | — | steps |
| time in each state | metrics `health/frac_<state>` (fraction of judged steps) | at the end | fraction |
| state at the end, recovered | tags `health.final_state`, `health.recovered` | — | counts |
| steps trained | Σ `health/steps_<state>` (judged optimizer steps; else the last logged step + 1) | — | steps |
| final test accuracy | metric `test/acc` | last | fraction |
| min signal ratio | `signal/first_last_ratio` (‖∂L/∂z‖ first layer / last) | min over steps | log10 |
| max dead fraction | `dead/max` (largest dead-unit fraction of any layer) | max over steps | fraction |
| max λ_max·η/2 | `sharpness/stability` (> 1: past the 2/η stability edge) | max over steps | log10 |
| min gradient first/last | `grad/first_last_ratio` (relative data gradient ‖g‖/‖θ‖) | min over steps | log10 |
| max gradient norm | `grad/global_norm` (data gradient) | max over steps | log10 |
| max training loss | `train/loss` (the data term; the blog post's "vanished" > 100, "exploded" > 1e4) | max | log10 |

The params a dose needs (`doses.py`) are kept. When a (condition, arm, seed) was run more than once (the
study repeated), the latest run counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from src.monitor.detectors import KINDS
from src.monitor.verdict import HEALTHY
from src.report.study_arms import study_labels
from src.report.table import metric_history, stored_value
from src.tracking.client import search_all_runs

STATES = (HEALTHY, *KINDS)  # healthy, nonfinite, exploding, divergence, zeroed_weights, vanishing, ...
DOSE_PARAMS = ("optim._target_", "optim.lr", "optim.momentum", "sched._target_", "trainer.max_steps",
               "reg.l2.strength", "reg.l2.mode", "reg.elasticnet.strength", "reg.elasticnet.l1_ratio",
               "reg.elasticnet.proximal")


@dataclass(frozen=True)
class Measure:
    key: str  # MLflow metric key
    label: str
    reduce: str  # "min", "max" or "last" over the run's logged steps
    log: bool  # summarize on log10 (geometric mean; the difference is a factor)
    bounded: bool = False  # a fraction in [0, 1]: its intervals stay inside (logit)


MEASURES = (
    Measure("test/acc", "final test acc", "last", False, bounded=True),
    Measure("signal/first_last_ratio", "min signal ratio", "min", True),
    Measure("dead/max", "max dead fraction", "max", False, bounded=True),
    Measure("sharpness/stability", "max λ_max·η/2", "max", True),
    Measure("grad/first_last_ratio", "min grad first/last", "min", True),
    Measure("grad/global_norm", "max ‖g‖", "max", True),
    Measure("train/loss", "max train loss", "max", True),
)
FIRST_EVENT = "first_event_step"


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
    states: dict[str, float] = field(default_factory=dict)  # state -> fraction of judged steps (empty: not logged)
    final_state: str | None = None
    recovered: bool | None = None
    steps: int | None = None  # optimizer steps trained (judged by the monitor)
    params: dict[str, str] = field(default_factory=dict)  # the `DOSE_PARAMS` the run logged


def reduce(values: list[float], how: str) -> float | None:
    kept = [v for v in values if not math.isnan(v)]
    if not kept:
        return None
    return {"min": min, "max": max, "last": lambda v: v[-1]}[how](kept)


def steps_trained(mlflow_client: Any, run: Any) -> int | None:
    """Judged optimizer steps (Σ `health/steps_<state>`); without the monitor, the last logged training step + 1."""
    metrics = run.data.metrics
    counted = [metrics[k] for k in metrics if k.startswith("health/steps_")]
    if counted:
        return int(round(sum(counted)))
    history = metric_history(mlflow_client, run.info.run_id, "train/loss") if "train/loss" in metrics else []
    return max(step for step, _ in history) + 1 if history else None


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
    recovered = tags.get("health.recovered")
    return StudyRun(run.info.run_id, *labels, seed=run.data.params.get("seed", "?"), start_time=run.info.start_time,
                    verdict=tags.get("health.verdict") or None,
                    first_event_step=int(step) if step.strip().lstrip("-").isdigit() else None, values=values,
                    seconds=(run.info.end_time - run.info.start_time) / 1000 if run.info.end_time else None,
                    states={s: metrics[f"health/frac_{s}"] for s in STATES if f"health/frac_{s}" in metrics},
                    final_state=tags.get("health.final_state") or None,
                    recovered=None if recovered is None else recovered == "true",
                    steps=steps_trained(mlflow_client, run),
                    params={k: run.data.params[k] for k in DOSE_PARAMS if k in run.data.params})


def newest_runs(mlflow_client: Any, experiment: str) -> dict[tuple[str, str, str], Any]:
    """The newest MLflow run of every (condition, arm, seed) of a study experiment, labelled as `read_run` labels
    a run (`study_labels` of its overrides, its `seed` param); {} when the experiment does not exist."""
    exp = mlflow_client.get_experiment_by_name(experiment)
    if exp is None:
        return {}
    newest: dict[tuple[str, str, str], Any] = {}
    for run in sorted(search_all_runs(mlflow_client, "", [exp.experiment_id]), key=lambda r: r.info.start_time):
        labels = study_labels(run.data.tags.get("overrides", "").split())
        if labels is not None:
            newest[(*labels, run.data.params.get("seed", "?"))] = run
    return newest


def latest_per_seed(runs: list[StudyRun]) -> list[StudyRun]:
    """One run per (condition, arm, seed): the one that started last."""
    kept: dict[tuple[str, str, str], StudyRun] = {}
    for r in sorted(runs, key=lambda r: r.start_time):
        kept[(r.condition, r.arm, r.seed)] = r
    return list(kept.values())


def runs_from_study_json(data: dict[str, Any]) -> list[StudyRun]:
    """The runs of a saved `study.json` (either edition: its cells' per-seed `values`), for re-analysis without
    the MLflow store. The first edition saved no params, steps or time in states: those stay empty (no dose,
    no timeline), and say so in the report ("—")."""
    runs = []
    for cell in data["cells"]:
        for i, (seed, v) in enumerate(cell["values"].items()):
            ids = cell.get("run_ids") or []
            step = v.get(FIRST_EVENT)
            runs.append(StudyRun(ids[i] if i < len(ids) else f"{cell['condition']}/{cell['arm']}/{seed}",
                                 cell["condition"], cell["arm"], str(seed), 0, v.get("verdict"),
                                 None if step is None else int(step), {m.key: v.get(m.key) for m in MEASURES},
                                 states=v.get("states") or {}, final_state=v.get("final_state"),
                                 recovered=v.get("recovered"), steps=v.get("steps"), params=v.get("params") or {}))
    return runs


def study_runs(mlflow_client: Any, experiment: str) -> list[StudyRun]:
    """Every finished or running job of the study's MLflow experiment, as study records."""
    exp = mlflow_client.get_experiment_by_name(experiment)
    if exp is None:
        raise SystemExit(f"no MLflow experiment named {experiment!r} in {mlflow_client.tracking_uri}")
    runs = search_all_runs(mlflow_client, "", [exp.experiment_id])
    records = [read_run(mlflow_client, r) for r in runs if r.data.tags.get("sweep_role") != "parent"]
    return [r for r in records if r is not None]
