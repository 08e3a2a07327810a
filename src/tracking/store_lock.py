"""A sqlite store another process keeps locked: wait a bounded time for its write lock, then say who holds it.

A process paused inside a write transaction (Ctrl-Z, SLURM's suspend, a debugger) keeps sqlite's write lock
until it goes on. In WAL mode readers are not stopped, but every write is: MLflow waits 20 s per statement and
the project's client repeats a locked call 8 times, so a start on such a store used to fail after minutes with
a traceback. Before a run exists, and before `python -m src.reap` closes anything, `wait_for_write_lock` takes
the write lock itself (`BEGIN IMMEDIATE`, released at once) waiting at most `GRADREG_STORE_WAIT_S` seconds
(default 30; a healthy store's transactions last milliseconds), and otherwise raises `StoreLocked`, one line
naming the store, the wait, and the process that holds the lock when this host can see it (`/proc/locks`:
sqlite's write lock is byte 120 of the `-shm` file in WAL mode, the RESERVED byte 0x40000001 of the database
file in the rollback journal).
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from src.settings import UserError
from src.settings.environment import STORE_WAIT_ENV, store_wait

WAL_WRITE_BYTE = 120  # sqlite's unix VFS: the first lock byte of the -shm file is the WAL writer's
RESERVED_BYTE = 0x40000001  # rollback journal: PENDING_BYTE + 1


class StoreLocked(UserError, RuntimeError):
    """Another process holds the sqlite store's write lock longer than this process may wait."""


def lock_holders(db: Path) -> list[int]:
    """Pids (other than this one) holding the write lock of the sqlite store `db`, as /proc/locks shows them."""
    wanted = {}
    for path, byte in ((Path(f"{db}-shm"), WAL_WRITE_BYTE), (db, RESERVED_BYTE)):
        try:
            wanted[path.stat().st_ino] = byte
        except OSError:
            continue
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return []
    holders = []
    for line in lines:
        fields = line.split()
        if "->" in fields or len(fields) < 8 or fields[1] != "POSIX" or fields[3] != "WRITE":
            continue  # a waiter ("->"), a flock, a read lock
        try:
            pid, inode = int(fields[4]), int(fields[5].rsplit(":", 1)[1])
            start, end = int(fields[6]), (2**63 if fields[7] == "EOF" else int(fields[7]))
        except (ValueError, IndexError):
            continue
        if inode in wanted and start <= wanted[inode] <= end and pid != os.getpid() and pid not in holders:
            holders.append(pid)
    return holders


def describe_process(pid: int) -> str:
    """`pid 123 (python -m src.train ..., stopped)`: its command line and, when paused (SIGSTOP, Ctrl-Z), that."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return f"pid {pid}"
    command = command if len(command) <= 60 else command[:57] + "..."
    return f"pid {pid} ({command}{', stopped' if state in ('T', 't') else ''})"


def wait_for_write_lock(db: Path, shown_uri: str, wait_s: float | None = None) -> None:
    """Return once this process could take the store's write lock (released at once); StoreLocked after `wait_s`
    (default: GRADREG_STORE_WAIT_S) seconds. A store that does not exist yet is not locked."""
    if not db.is_file():
        return
    wait_s = store_wait() if wait_s is None else wait_s
    start = time.monotonic()
    try:
        con = sqlite3.connect(db, timeout=wait_s, isolation_level=None)
        try:
            con.execute("BEGIN IMMEDIATE")
            con.execute("ROLLBACK")
        finally:
            con.close()
    except sqlite3.OperationalError as err:
        if "locked" not in str(err) and "busy" not in str(err):
            raise
        holders = ", ".join(describe_process(pid) for pid in lock_holders(db)) or "a process this host cannot see"
        raise StoreLocked(
            f"MLflow store {shown_uri} is locked by another process: {holders} holds its write lock; waited "
            f"{time.monotonic() - start:.0f} s (limit {wait_s:g} s, {STORE_WAIT_ENV}). Let that process go on (a "
            "stopped one: kill -CONT <pid>, or fg in its shell) or end it, then start again. Nothing was trained "
            "and no run was changed."
        ) from None
