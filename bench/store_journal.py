"""`python -m bench.store_journal`: the evidence for the sqlite store's journal (`src/tracking/store.py`).

1. **Commit time**: one MLflow `log_batch` of 4 metric rows (the logger's batch at a logging step) into a
   store in sqlite's default rollback journal and into one in WAL with `synchronous=NORMAL` (what the
   project sets), alternating call by call so the machine's load hits both alike; median and 90th
   percentile, ms wall.
2. **A paused writer**: what a second process can still do while a writer is stopped (Ctrl-Z, a SLURM
   suspend) inside its transaction, and inside its commit. The pause is made deterministic by holding
   the lock such a writer holds (`BEGIN IMMEDIATE` + a write: mid-transaction; rollback journal's commit:
   the `EXCLUSIVE` lock while it writes the database file; a WAL commit only appends to the `-wal` file
   under the same write lock as mid-transaction); the other process tries a read (the UI, the reaper's
   search) and a write (the reaper closing a run) with a 0.5 s busy timeout.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROBE = """
import sqlite3, sys
db, what = sys.argv[1], sys.argv[2]
con = sqlite3.connect(db, timeout=0.5)
try:
    con.execute("SELECT count(*) FROM t").fetchone() if what == "read" else con.execute("INSERT INTO t VALUES (2)")
    con.commit()
    print("ok")
except sqlite3.OperationalError as exc:
    print(exc)
"""


def commit_times(calls: int) -> dict[str, list[float]]:
    """ms per `log_batch` of 4 rows: {"rollback": [...], "wal+normal": [...]}, calls alternating."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from src.tracking.store import use_wal_journal

    folder = Path(tempfile.mkdtemp(prefix="journal-"))
    clients = {"rollback": MlflowClient(f"sqlite:///{folder / 'rollback.db'}")}
    run_ids = {"rollback": clients["rollback"].create_run(clients["rollback"].create_experiment("x")).info.run_id}
    use_wal_journal()  # connections made from here on: WAL + synchronous=NORMAL (the rollback store's pool is open)
    clients["wal+normal"] = MlflowClient(f"sqlite:///{folder / 'wal.db'}")
    run_ids["wal+normal"] = clients["wal+normal"].create_run(
        clients["wal+normal"].create_experiment("x")).info.run_id
    times: dict[str, list[float]] = {name: [] for name in clients}
    for i in range(calls):
        for name, client in clients.items():
            rows = [Metric(f"m{k}", float(i), int(time.time() * 1000), i) for k in range(4)]
            start = time.perf_counter()
            client.log_batch(run_ids[name], metrics=rows)
            times[name].append((time.perf_counter() - start) * 1000)
    modes = {name: sqlite3.connect(folder / f).execute("PRAGMA journal_mode").fetchone()[0]
             for name, f in (("rollback", "rollback.db"), ("wal+normal", "wal.db"))}
    assert modes == {"rollback": "delete", "wal+normal": "wal"}, modes
    return times


def paused_writer(journal: str) -> dict[str, str]:
    """What another process gets while a writer holds its lock: {situation/attempt: "ok" or sqlite's error}."""
    db = Path(tempfile.mkdtemp(prefix="paused-")) / "store.db"
    con = sqlite3.connect(db, isolation_level=None)
    con.execute(f"PRAGMA journal_mode={journal}")
    con.execute("CREATE TABLE t (x INTEGER)")
    out = {}
    for situation, begin in (("mid-transaction", "BEGIN IMMEDIATE"), ("in its commit", "BEGIN EXCLUSIVE")):
        con.execute(begin)
        con.execute("INSERT INTO t VALUES (1)")
        for attempt in ("read", "write"):
            done = subprocess.run([sys.executable, "-c", PROBE, str(db), attempt], capture_output=True, text=True)
            out[f"{situation}: {attempt}"] = done.stdout.strip() or done.stderr.strip()[-200:]
        con.execute("ROLLBACK")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=60, help="log_batch calls per journal")
    args = parser.parse_args(argv)
    print(f"1. one log_batch of 4 rows, {args.calls} calls each, alternating (ms wall)")
    for name, times in commit_times(args.calls).items():
        q = statistics.quantiles(times, n=10)
        print(f"  {name:11s} median {statistics.median(times):6.2f}  p90 {q[-1]:6.2f}")
    print("\n2. another process while a writer is paused (0.5 s busy timeout)")
    print("| journal | " + " | ".join(paused_writer("delete")) + " |")
    print("|---|" + "---|" * 4)
    for journal in ("delete", "wal"):
        print(f"| {journal} | " + " | ".join(paused_writer(journal).values()) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
