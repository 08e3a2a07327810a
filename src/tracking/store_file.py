"""Is the sqlite file an MLflow store at all: garbage bytes, a truncated copy or another program's database are
refused in one line before any run exists, instead of a page of SQLAlchemy traceback from the first query.

The checks read the file's first 100 bytes and its schema (milliseconds, whatever the store's size):

- the header: a sqlite file starts with `SQLite format 3\\0` (an empty file is a new store: allowed);
- the length: when the header's page count is valid (its "version-valid-for" field equals the change
  counter) the file holds at least `page count x page size` bytes, or it was cut short (a copy that
  stopped, a full disk while copying) - unless a `-wal` file beside it still holds the pages (a WAL
  checkpoint that a full disk stopped half-way: sqlite finishes it at the next connection);
- the schema is readable (`sqlite_master`), and holds MLflow's tables (`alembic_version`, `runs`) or
  none (a store MLflow will create).

A page damaged in the middle of a long file passes these; `sqlite3 mlflow.db 'PRAGMA integrity_check'`
finds it (it reads every page: seconds per GB), and `docs/operations.md` says how to recover.
"""

from __future__ import annotations

import sqlite3
import struct
from pathlib import Path

from src.settings import UserError

HEADER = b"SQLite format 3\x00"
MLFLOW_TABLES = ("alembic_version", "runs")


class StoreFileBroken(UserError, RuntimeError):
    """The sqlite file named as the MLflow store is not a usable MLflow database."""


def advice(db: Path) -> str:
    return (f"Restore it from a backup, or move it aside (mv {db} {db}.broken) to start an empty store there, or "
            "point MLFLOW_TRACKING_URI at another store (docs/operations.md, The sqlite store: a broken store). "
            "Nothing was trained.")


def header_problem(db: Path) -> str | None:
    """Why the first 100 bytes say this is no (whole) sqlite database, or None."""
    size = db.stat().st_size
    if size == 0:
        return None  # sqlite makes a new database in an empty file
    with db.open("rb") as handle:
        head = handle.read(100)
    if not head.startswith(HEADER):
        return "it does not start with the sqlite header (SQLite format 3)"
    if len(head) < 100:
        return f"it is cut short ({size} bytes, less than a sqlite header)"
    page_size = struct.unpack(">H", head[16:18])[0]
    page_size = 65536 if page_size == 1 else page_size
    change_counter, pages, valid_for = struct.unpack(">I", head[24:28])[0], struct.unpack(">I", head[28:32])[0], \
        struct.unpack(">I", head[92:96])[0]
    wal = Path(f"{db}-wal")
    wal_holds_pages = wal.is_file() and wal.stat().st_size > 0  # a checkpoint the disk cut short: the WAL has them
    if pages and valid_for == change_counter and size < pages * page_size and not wal_holds_pages:
        return f"it is cut short ({size} bytes; its header counts {pages} pages of {page_size} bytes)"
    return None


def schema_problem(db: Path) -> str | None:
    """Why the schema cannot be read or is not MLflow's, or None."""
    try:
        con = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            con.close()
    except sqlite3.DatabaseError as err:
        if "locked" in str(err):
            return None  # busy, not broken: the lock probe (store_lock.py) decides how long to wait
        return f"sqlite cannot read its schema ({err})"
    if tables and not all(t in tables for t in MLFLOW_TABLES):
        shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        return f"it is a sqlite database of another program (tables: {shown}; no MLflow tables)"
    return None


def ensure_mlflow_file(db: Path, shown_uri: str) -> None:
    """Raise StoreFileBroken naming the store, what is wrong with its file and what to do; quiet when it does
    not exist yet (MLflow creates it) or is a readable MLflow store."""
    if not db.is_file():
        return
    problem = header_problem(db) or schema_problem(db)
    if problem:
        raise StoreFileBroken(f"MLflow store {shown_uri} is not a usable MLflow database: {problem}. {advice(db)}")
