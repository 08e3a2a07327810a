"""The MLflow UI's training view: experiment tags and the URLs the project prints.

MLflow 3.17's UI has two views, GenAI (traces, tokens, latency; its default) and model training
(runs, metrics, datasets). It picks one from the URL parameter `workflowType` (`genai` |
`machine_learning`), else from the browser's last choice (local storage `mlflow.workflowType_v1`),
else GenAI; the experiment tag `mlflow.experimentKind` is what earlier 3.x UIs read to make that
choice per experiment (3.17 reads it only when its workflow switch is disabled). So the project
does both: its experiments carry `mlflow.experimentKind=custom_model_development`, and every URL it
prints ends in `?workflowType=machine_learning`, which opens the runs table, not the GenAI overview.

`python scripts/ui_links.py [--store URI] [--base-url URL]` tags the project's experiments of a
store (ones whose runs this project made) and prints their URLs; `make ui` runs it before the UI.
"""

from __future__ import annotations

import logging
from typing import Any

from src.tracking.reachability import without_userinfo
from src.tracking.redaction import redact_uri

log = logging.getLogger(__name__)

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
TRAINING_KIND = "custom_model_development"  # MLflow's value for the model-training view
VIEW_QUERY = "workflowType=machine_learning"
DEFAULT_UI = "http://127.0.0.1:5000"  # where `mlflow ui` (and `make ui`) serve a local store
PROJECT_RUN_FILTER = "tags.git_commit LIKE '%'"  # every run and sweep parent this project creates has it


def ui_base_url(uri: str, local_ui: str = DEFAULT_UI) -> str:
    """Where the UI of a store is: the tracking server itself, or `mlflow ui` on 127.0.0.1 for a local store."""
    if uri.startswith(("http://", "https://")):
        return redact_uri(without_userinfo(uri)).rstrip("/")
    return local_ui.rstrip("/")


def experiment_url(base: str, experiment_id: str) -> str:
    """The experiment's runs table in the training view."""
    return f"{base}/#/experiments/{experiment_id}/runs?{VIEW_QUERY}"


def run_url(base: str, experiment_id: str, run_id: str) -> str:
    """One run's page in the training view."""
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}?{VIEW_QUERY}"


def training_view_tags() -> dict[str, str]:
    """Tags of a new project experiment."""
    return {EXPERIMENT_KIND_TAG: TRAINING_KIND}


def mark_training_view(mlflow_client: Any, experiment: Any) -> bool:
    """Tag an existing experiment for the training view unless it says what kind it is; True if tagged.

    A server that refuses (an experiment shared read-only) costs the UI's default view, not the run:
    the refusal is logged and training goes on.
    """
    from mlflow.exceptions import MlflowException

    if EXPERIMENT_KIND_TAG in (experiment.tags or {}):
        return False
    try:
        mlflow_client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, TRAINING_KIND)
    except MlflowException as err:
        log.warning("Experiment %s keeps the UI's default view: tagging it was refused (%s)", experiment.name,
                    err.error_code)
        return False
    return True


def project_experiments(mlflow_client: Any) -> list[Any]:
    """Experiments of the store that hold runs this project made (on a shared server, only those)."""
    return [
        e for e in mlflow_client.search_experiments()
        if mlflow_client.search_runs([e.experiment_id], PROJECT_RUN_FILTER, max_results=1)
    ]
