"""The sqlite store's journal (WAL + synchronous=NORMAL on local disks, the rollback journal on network file
systems), copies of a store that miss nothing, and the logger's writes off the training thread."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from src.tracking import store
from src.tracking.client import client
from src.tracking.logger import RunLogger

READ = ("import sqlite3, sys; "
        "print(sqlite3.connect(sys.argv[1], timeout=0.2).execute('SELECT count(*) FROM runs').fetchone()[0])")


def new_store(tmp_path: Path, name: str = "mlflow.db") -> tuple[Path, object]:
    db = tmp_path / name
    mlflow_client = client(f"sqlite:///{db}")  # the project's client: WAL before its first connection
    mlflow_client.search_experiments()  # creates the schema through a first connection
    return db, mlflow_client


def test_a_local_store_is_wal_and_a_reader_goes_on_while_a_writer_holds_its_transaction(tmp_path: Path) -> None:
    db, mlflow_client = new_store(tmp_path)
    assert sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    run = mlflow_client.create_run(mlflow_client.create_experiment("e"))
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # a writer paused inside its transaction holds the write lock
    writer.execute("UPDATE runs SET status = 'FAILED'")
    count = subprocess.run([sys.executable, "-c", READ, str(db)], capture_output=True, text=True, timeout=60)
    writer.execute("ROLLBACK")
    assert count.stdout.strip() == "1", count.stderr  # the committed state, at once
    assert mlflow_client.get_run(run.info.run_id).info.status == "RUNNING"


def test_this_process_commits_with_synchronous_normal(tmp_path: Path) -> None:
    from sqlalchemy import create_engine, text

    db, _ = new_store(tmp_path)
    with create_engine(f"sqlite:///{db}").connect() as con:
        assert con.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL (FULL is 2)


def test_a_store_on_a_network_file_system_keeps_the_rollback_journal(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "filesystem_type", lambda path: "nfs4")
    db, _ = new_store(tmp_path)
    assert sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_copy_store_keeps_what_a_file_copy_of_a_wal_store_loses(tmp_path: Path) -> None:
    db, mlflow_client = new_store(tmp_path)
    held = sqlite3.connect(db)  # an open reader keeps sqlite from checkpointing the WAL into the file
    held.execute("SELECT 1 FROM runs").fetchall()
    run_id = mlflow_client.create_run(mlflow_client.create_experiment("e")).info.run_id
    assert (tmp_path / "mlflow.db-wal").stat().st_size > 0
    shutil.copy(db, tmp_path / "plain.db")
    store.copy_store(db, tmp_path / "backup.db")
    held.close()
    query = "SELECT count(*) FROM runs WHERE run_uuid = ?"
    assert sqlite3.connect(tmp_path / "backup.db").execute(query, (run_id,)).fetchone()[0] == 1
    assert sqlite3.connect(tmp_path / "plain.db").execute(query, (run_id,)).fetchone()[0] == 0


class SlowClient:
    """Passes calls to a real client; `log_batch` waits until `release` is set (a store that stalls)."""

    def __init__(self, inner: object, fail: bool = False) -> None:
        self.inner, self.release, self.fail, self.calls = inner, threading.Event(), fail, 0

    def log_batch(self, *args: object, **kwargs: object) -> None:
        self.calls += 1
        self.release.wait(30)
        if self.fail:
            raise RuntimeError("database is full")
        self.inner.log_batch(*args, **kwargs)


def test_the_logger_returns_before_the_store_commits_and_finalize_waits_for_it(tmp_path: Path) -> None:
    _, mlflow_client = new_store(tmp_path)
    run_id = mlflow_client.create_run(mlflow_client.create_experiment("e")).info.run_id
    slow = SlowClient(mlflow_client)
    logger = RunLogger(slow, run_id, rows_interval_s=0.0)
    for step in range(3):
        logger.log_metrics({"train/loss": 1.0 / (step + 1)}, step=step)  # returns though the store is stalled
    assert mlflow_client.get_metric_history(run_id, "train/loss") == []
    slow.release.set()
    logger.finalize("success")
    assert [m.step for m in mlflow_client.get_metric_history(run_id, "train/loss")] == [0, 1, 2]


def test_a_failed_write_is_raised_after_success_and_logged_with_its_rows_after_a_failure(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _, mlflow_client = new_store(tmp_path)
    run_id = mlflow_client.create_run(mlflow_client.create_experiment("e")).info.run_id
    for status in ("success", "failed"):
        failing = SlowClient(mlflow_client, fail=True)
        failing.release.set()
        logger = RunLogger(failing, run_id, rows_interval_s=60.0)  # both rows wait for one send
        logger.log_metrics({"a": 1.0, "b": 2.0}, step=0)
        if status == "success":
            with pytest.raises(RuntimeError, match="database is full"):
                logger.finalize(status)
        else:
            logger.finalize(status)
            assert "2 metric rows were not written" in caplog.text


def test_a_saved_checkpoint_drains_the_queue(tmp_path: Path) -> None:
    _, mlflow_client = new_store(tmp_path)
    run_id = mlflow_client.create_run(mlflow_client.create_experiment("e")).info.run_id
    logger = RunLogger(mlflow_client, run_id, rows_interval_s=60.0)  # nothing would be sent for a minute
    logger.log_metrics({"train/loss": 0.5}, step=7)
    logger.after_save_checkpoint(None)
    assert [m.step for m in mlflow_client.get_metric_history(run_id, "train/loss")] == [7]
    logger.finalize("success")
