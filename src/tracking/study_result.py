"""A search sweep's result on its parent run: the best trial's params and value, and which run it was.

Hydra's Optuna sweeper writes `<sweep dir>/optimization_results.yaml` when the study ends:
`best_params` and `best_value` (one objective) or `solutions` (the Pareto front of several). The
sweep callback calls `record_study_result` when it closes the parent run; a grid sweep has no such
file and gets no tags. Tags (strings, MLflow's limits):

- `study.sweeper`: the sweeper that wrote the results (`optuna`);
- `study.best_value`: the objective of the best trial (the job's `optimized_metric`, e.g. val/acc);
- `study.best_params`: the best trial as overrides, ready to paste: `optim.lr=0.0123 reg.l2.strength=0.0004`;
- `study.best.<key>`: each best param on its own (a column in the runs table);
- `study.best_run_id`, `study.best_run_name`: the job run whose overrides are the best params;
- `study.pareto_front`: the solutions of a multi-objective study, as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

RESULTS_FILE = "optimization_results.yaml"  # written by hydra-optuna-sweeper into the sweep dir
MAX_TAG_LENGTH = 8000  # MLflow's limit for a tag value


def study_tags(results: Mapping[str, Any], children: list[Any]) -> dict[str, str]:
    """The parent's tags from the sweeper's results and the sweep's job runs."""
    sweeper = {"study.sweeper": str(results.get("name", "optuna"))}
    if "solutions" in results:
        return {**sweeper, "study.pareto_front": json.dumps(results["solutions"], default=str)[:MAX_TAG_LENGTH]}
    best = {str(k): v for k, v in (results.get("best_params") or {}).items()}
    overrides = [f"{k}={v}" for k, v in best.items()]
    tags = {
        **sweeper,
        "study.best_value": str(results.get("best_value")),
        "study.best_params": " ".join(overrides)[:MAX_TAG_LENGTH],
        **{f"study.best.{k}": str(v) for k, v in best.items()},
    }
    for run in children:
        if overrides and set(overrides) <= set(run.data.tags.get("overrides", "").split()):
            tags.update({"study.best_run_id": run.info.run_id, "study.best_run_name": run.info.run_name})
            break
    return tags


def record_study_result(mlflow_client: Any, parent_run_id: str, sweep_dir: Path) -> dict[str, str]:
    """Tag the parent run with the study's result and log the results file; {} when there is none."""
    from omegaconf import OmegaConf

    from src.tracking.client import log_batch, search_all_runs

    path = Path(sweep_dir) / RESULTS_FILE
    if not path.is_file():
        return {}
    results = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    children = search_all_runs(mlflow_client, f"tags.`mlflow.parentRunId` = '{parent_run_id}'")
    tags = study_tags(results, children)
    log_batch(mlflow_client, parent_run_id, tags=tags)
    mlflow_client.log_artifact(parent_run_id, str(path), "study")
    return tags
