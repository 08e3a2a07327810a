"""What the report reads from one MLflow run, and which of the runs' settings tell them apart.

A report row must hold runs that differ in nothing but the seed. The settings of a run are its
logged params (the flattened resolved config), without:

- the seed and every key derived from it (`data.seed: ${seed}`: equal to the run's seed in every run);
- bookkeeping (where a run writes, how it logs: `BOOKKEEPING` of `src/tracking/short_forms.py`).

`varying_settings` is then every remaining key whose value is not the same in all runs; a row is one
combination of their values (`src/report/table.py`), so two doses, two learning rates or two study
arms can never share a row, whatever the run names or overrides say. Runs logged without their
config (only a seed param) fall back to their `overrides` tag.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any

from src.tracking.short_forms import BOOKKEEPING, matches, part

STATUS_OUTCOME = {"RUNNING": "running", "SCHEDULED": "running", "FAILED": "failed", "KILLED": "interrupted"}
CONFIG_MARKER = "model._target_"  # a run whose params hold its resolved config has this one


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
    params: dict[str, str]

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
            params=dict(params),
        )

    @property
    def settings(self) -> dict[str, str]:
        """The run's settings: its config params, or (runs logged without them) its overrides."""
        if CONFIG_MARKER in self.params:
            return self.params
        return {override_key(o): o.split("=", 1)[-1] for o in self.overrides}


def override_key(override: str) -> str:
    """`+study/arm=l1_adam` -> `study/arm`."""
    return override.split("=", 1)[0].lstrip("+~")


def seed_derived(records: list[RunRecord]) -> set[str]:
    """Keys equal to the run's seed in every run that has them (`seed`, `data.seed`)."""
    keys = set().union(*(r.settings for r in records)) if records else set()
    return {k for k in keys if all(r.settings.get(k, r.seed) == r.seed for r in records)}


def varying_settings(records: list[RunRecord]) -> list[str]:
    """Settings whose value differs between runs, seeds and bookkeeping left out, sorted."""
    keys = set().union(*(r.settings for r in records)) if records else set()
    derived = seed_derived(records)
    return sorted(k for k in keys if k not in derived and not matches(k, BOOKKEEPING)
                  and len({r.settings.get(k) for r in records}) > 1)


def setting_label(key: str, value: str | None) -> str:
    """A setting as a short name part (`lam1e-3`, `lr0.05`), `key=∅` when the run does not have it."""
    return f"{key}=∅" if value is None else part(key, value)


def shared_overrides(records: list[RunRecord]) -> list[str]:
    """Overrides every run has (the sweep's fixed settings), in the first run's order."""
    if not records:
        return []
    common = set(records[0].overrides).intersection(*(r.overrides for r in records[1:]))
    return [o for o in records[0].overrides if o in common]


def sort_value(value: str | None) -> tuple[int, float, str]:
    """Order of a setting's values: missing first, numbers by size, then words."""
    if value is None:
        return (0, 0.0, "")
    try:
        return (1, float(value), "")
    except ValueError:
        return (2, 0.0, value)


def stored_value(value: float) -> float:
    """MLflow stores ±Inf as ±float max: give the infinity back."""
    return math.copysign(math.inf, value) if abs(value) >= sys.float_info.max else value


def metric_history(mlflow_client: Any, run_id: str, key: str) -> list[tuple[int, float]]:
    """The (step, value) points of one metric of one run on the run's current trajectory, in step order (±Inf
    given back as such).

    A run resumed from a checkpoint older than its last logged step (it was killed without its clean stop)
    trains those steps again and logs them a second time: the points logged before, from that step on, belong to
    a trajectory that was abandoned. Read in the order they were logged, a step lower than the last one kept
    marks such a restart, and the kept points from that step on are dropped."""
    logged = sorted(mlflow_client.get_metric_history(run_id, key), key=lambda m: (m.timestamp, m.step))
    kept: list[Any] = []
    for point in logged:
        if kept and point.step < kept[-1].step:
            while kept and kept[-1].step >= point.step:
                kept.pop()
        kept.append(point)
    return [(m.step, stored_value(m.value)) for m in sorted(kept, key=lambda m: m.step)]


def history_values(mlflow_client: Any, run_id: str, key: str) -> list[float]:
    """Every logged value of one metric of one run, in step order."""
    return [value for _, value in metric_history(mlflow_client, run_id, key)]
