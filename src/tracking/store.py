"""Where runs are stored: the tracking URI, artifact locations, experiments, the UI command.

Store: `sqlite:///<project root>/mlruns/mlflow.db` with artifacts under `mlruns/artifacts/`
(MLflow >= 3.13 refuses the plain file store). `MLFLOW_TRACKING_URI` overrides it.

A sqlite store on a local disk is put in sqlite's WAL journal (once; the mode is kept in the file) and
this process's connections to it commit with `synchronous=NORMAL` (`use_wal_journal`): a commit appends
to the `-wal` file without waiting for the disk, and readers (the UI, `python -m src.reap`'s search, a
resume's lookup) never wait for a writer, even one paused in the middle of its transaction. Measured
and explained in `docs/operations.md` (*The sqlite store*), with what it means for copying a store
(`copy_store`) and why a store on a network file system keeps the rollback journal.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from src.paths import PROJECT_ROOT
from src.tracking.redaction import redact_uri
from src.tracking.ui_links import mark_training_view, training_view_tags

NETWORK_FILESYSTEMS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "lustre", "gpfs", "beegfs", "ceph", "fuse.sshfs",
                       "9p", "afs")  # sqlite's WAL needs shared memory between its processes: one host only
_installed = False


def filesystem_type(path: Path) -> str:
    """The type of the file system holding `path` (`/proc/mounts`, longest mount point); "" if unknown."""
    try:
        mounts = [line.split()[1:3] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return ""
    path = path.resolve()
    best = max((m for m in mounts if path.is_relative_to(m[0].replace("\\040", " "))), key=lambda m: len(m[0]),
               default=None)
    return best[1] if best else ""


def wal_allowed(db: Path) -> bool:
    """Whether a sqlite file here may use the WAL journal: not on a network file system."""
    return filesystem_type(db.parent) not in NETWORK_FILESYSTEMS


def _on_connect(dbapi_connection: object, _record: object) -> None:
    """Every new sqlite connection of this process: WAL (local disks) and `synchronous=NORMAL` in it."""
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    rows = dbapi_connection.execute("PRAGMA database_list").fetchall()
    db = next((Path(r[2]) for r in rows if r[1] == "main" and r[2]), None)
    if db is None or not wal_allowed(db):
        return  # in-memory, or on a network file system: the rollback journal stays
    if dbapi_connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        try:
            dbapi_connection.execute("PRAGMA journal_mode=WAL")  # kept in the file; needs a moment with no writer
        except sqlite3.OperationalError:  # another process holds it now: a later connection switches it
            return
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")  # in WAL: durable at checkpoints, never corrupt


def use_wal_journal() -> None:
    """Install `_on_connect` for every SQLAlchemy engine of this process (MLflow's sqlite stores); once."""
    global _installed
    if _installed:
        return
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    event.listen(Engine, "connect", _on_connect)
    _installed = True


def copy_store(source: Path, target: Path) -> None:
    """A consistent copy of the sqlite store `source` at `target`, whatever its journal: sqlite's backup
    API reads committed pages from the database and its `-wal` file alike (a plain file copy of a WAL
    store misses what is not yet checkpointed into the main file)."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()


def default_store_dir() -> Path:
    return PROJECT_ROOT / "mlruns"


def tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI` if set, else the project's sqlite store (its folder is created). Either way, the
    process's sqlite connections use the WAL journal where the disk allows (`use_wal_journal`)."""
    use_wal_journal()
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
    from src.tracking.deleted import refuse_deleted_experiment

    exp = mlflow_client.get_experiment_by_name(name)
    refuse_deleted_experiment(exp, "logger.experiment_name", mlflow_client.tracking_uri)  # never a run in the bin
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
