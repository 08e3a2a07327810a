"""Where runs are stored: the tracking URI, artifact locations, experiments, the UI command.

Store: `sqlite:///<project root>/mlruns/mlflow.db` with artifacts under `mlruns/artifacts/`
(MLflow >= 3.13 refuses the plain file store). `MLFLOW_TRACKING_URI` overrides it.
"""

from __future__ import annotations

import os
from pathlib import Path

from src.paths import PROJECT_ROOT
from src.tracking.redaction import redact_uri
from src.tracking.ui_links import mark_training_view, training_view_tags


def default_store_dir() -> Path:
    return PROJECT_ROOT / "mlruns"


def tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI` if set, else the project's sqlite store (its folder is created)."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    store = default_store_dir()
    store.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{store / 'mlflow.db'}"


def artifact_location(uri: str, experiment_name: str) -> str | None:
    """Artifacts of a sqlite store lie beside its database; servers choose their own."""
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        return (db.parent / "artifacts" / experiment_name).resolve().as_uri()
    return None


def ui_command(uri: str | None = None) -> str:
    """The exact command that opens the MLflow UI on this store, bound to 127.0.0.1 (credentials stripped)."""
    uri = redact_uri(uri or tracking_uri())
    if uri.startswith(("http://", "https://")):
        return f"open {uri} in a browser"
    return f"mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000"


def get_or_create_experiment(mlflow_client, name: str) -> str:  # noqa: ANN001
    """Experiment id by name; created with artifacts beside a sqlite store when new. New and existing
    experiments are tagged for the UI's model-training view (`src/tracking/ui_links.py`)."""
    exp = mlflow_client.get_experiment_by_name(name)
    if exp is not None:
        mark_training_view(mlflow_client, exp)
        return exp.experiment_id
    try:
        return mlflow_client.create_experiment(
            name, artifact_location=artifact_location(mlflow_client.tracking_uri, name), tags=training_view_tags()
        )
    except Exception:  # noqa: BLE001 - another process of a sweep created it first
        exp = mlflow_client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id
