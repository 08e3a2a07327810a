"""Where a job's run will live, checked before it exists: its experiment is not deleted and its artifact root can
be written.

A read-only artifact folder beside a writable sqlite database (a store copied from another user, a mount made
read-only) let the run be created, then its first artifact (the resolved config) failed: an empty FAILED run
was left in the UI with a traceback. The artifact root is the experiment's `artifact_location` (a new
experiment on a sqlite store: `artifacts/<experiment>` beside the database, `store.artifact_location`); for
`resume=<id>` it is the run's own. Only local roots (`file://` or a path) can be judged here; a server's proxied
or cloud root is the server's business.
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from src.settings import UserError
from src.tracking.deleted import refuse_deleted_experiment, refuse_deleted_run


class ArtifactRootUnwritable(UserError, RuntimeError):
    """The folder the run's artifacts would go to cannot be written."""


def local_folder(location: str | None) -> Path | None:
    """The local folder of an artifact location (`file:///...` or a plain path), else None."""
    if not location:
        return None
    parts = urllib.parse.urlsplit(location)
    if parts.scheme == "file":
        return Path(urllib.parse.unquote(parts.path))
    if parts.scheme == "" and location.startswith("/"):
        return Path(location)
    return None


def unwritable_part(folder: Path) -> Path | None:
    """The folder itself, or its nearest existing parent when it does not exist yet, if this user cannot write
    there (a read-only file system counts, even for root); None when it can be written."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return None if folder.is_dir() and os.access(folder, os.W_OK | os.X_OK) else folder


def ensure_artifacts_writable(location: str | None, setting: str) -> None:
    folder = local_folder(location)
    blocker = unwritable_part(folder) if folder is not None else None
    if blocker is None:
        return
    raise ArtifactRootUnwritable(
        f"{setting}: the run's artifacts would go to {folder}, but {blocker} cannot be written (read-only or "
        "not yours). Make it writable, or use an experiment whose artifact location can be written "
        "(logger.experiment_name=<new name>). Nothing was trained and no run was created or changed."
    )


def ensure_run_home(mlflow_client: Any, cfg: DictConfig) -> None:
    """Refuse (a UserError, one line) a deleted experiment or run and an artifact root that cannot be written."""
    from mlflow.exceptions import MlflowException

    from src.tracking.store import artifact_location

    uri = mlflow_client.tracking_uri
    if cfg.get("resume"):
        try:
            run = mlflow_client.get_run(str(cfg.resume))
        except MlflowException:
            return  # no such run: the resume plan says so
        refuse_deleted_run(run, f"resume={cfg.resume!r}", uri)
        ensure_artifacts_writable(run.info.artifact_uri, f"resume={cfg.resume!r}")
        return
    name = str(cfg.logger.experiment_name)
    experiment = mlflow_client.get_experiment_by_name(name)
    refuse_deleted_experiment(experiment, "logger.experiment_name", uri)
    location = experiment.artifact_location if experiment is not None else artifact_location(uri, name)
    ensure_artifacts_writable(location, f"logger.experiment_name={name!r}")
