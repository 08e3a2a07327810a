"""A sqlite store on a file system with (next to) no space left is refused before a run exists.

Once sqlite cannot grow its file (or its `-wal`), every write fails with "database or disk is full": the run
could be created and then neither log a step nor be closed. A start therefore asks the file system first and
refuses when less than `MIN_FREE_MIB` is available to this user: a run's first writes (its params, config
artifacts and the first minutes of metric rows) take about a MiB, so below this a run would fail within minutes.
A disk that fills while the run trains is `src/lifecycle/store_write_stop.py`'s business.
"""

from __future__ import annotations

import os
from pathlib import Path

from src.settings import UserError

MIN_FREE_MIB = 16


class StoreDiskFull(UserError, RuntimeError):
    """The store's file system has too little space left for a run."""


def free_bytes(path: Path) -> int | None:
    """Bytes available to this user on the file system of `path` (its nearest existing folder); None if unknown."""
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        stats = os.statvfs(path)
    except OSError:
        return None
    return stats.f_bavail * stats.f_frsize


def ensure_store_space(db: Path, shown_uri: str, min_free_mib: float = MIN_FREE_MIB) -> None:
    """Raise StoreDiskFull naming the store, the space left and what to do, when under `min_free_mib` MiB."""
    free = free_bytes(db.parent)
    if free is None or free >= min_free_mib * 2**20:
        return
    raise StoreDiskFull(
        f"MLflow store {shown_uri} has {free / 2**20:.1f} MiB free on its disk (a run needs at least "
        f"{min_free_mib:g} MiB): free space there (df -h {db.parent}), or point MLFLOW_TRACKING_URI at a store on "
        "another disk. Nothing was trained and no run was created."
    )
