"""Experiments and runs deleted in the store (the UI's bin): refused in one line, with the command that restores them.

MLflow's delete only marks them (`lifecycle_stage = deleted`) until `mlflow gc` purges them: a deleted
experiment keeps its name, so `logger.experiment_name` still finds it and every run created in it fails with
MLflow's "must be in the 'active' state" traceback (in a sweep: every job); a deleted run can be read but not
written, so `resume=<id>` of one failed after the run was reopened. Both are refused before any run is created
or changed.
"""

from __future__ import annotations

from typing import Any

from src.settings import UserError
from src.tracking.redaction import redact_uri

DELETED = "deleted"


class DeletedInStore(UserError, RuntimeError):
    """The experiment or run named is deleted in the store."""


def refuse_deleted_experiment(experiment: Any, setting: str, uri: str) -> None:
    """DeletedInStore when `experiment` (an MLflow Experiment, or None) is deleted."""
    if experiment is None or experiment.lifecycle_stage != DELETED:
        return
    store = redact_uri(uri)
    raise DeletedInStore(
        f"{setting}: experiment {experiment.name!r} (id {experiment.experiment_id}) is deleted in the MLflow store "
        f"{store}; a deleted experiment keeps its name until `mlflow gc`. Restore it (MLFLOW_TRACKING_URI={store} "
        f"mlflow experiments restore --experiment-id {experiment.experiment_id}) or choose another "
        "logger.experiment_name. Nothing was trained and no run was created."
    )


def refuse_deleted_run(run: Any, setting: str, uri: str) -> None:
    """DeletedInStore when `run` (an MLflow Run) is deleted."""
    if run.info.lifecycle_stage != DELETED:
        return
    store = redact_uri(uri)
    raise DeletedInStore(
        f"{setting}: run {run.info.run_id} is deleted in the MLflow store {store}. Restore it first "
        f"(MLFLOW_TRACKING_URI={store} mlflow runs restore --run-id {run.info.run_id}, or the UI's bin), then "
        "resume; or start a new run. The run was not changed."
    )
