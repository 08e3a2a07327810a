"""`StoreWriteStop.on_exception` keeps every metric row the store refuses, however the run failed: also when the
failure came before the logger's writer had tried to send (a short run ends inside `rows_interval_s`, an
artifact write on the full disk fails first). Shown on a pair: a store that refuses rows and one that takes them.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from src.lifecycle.store_write_stop import StoreWriteStop, stopped_line
from src.lifecycle.unsent_rows import UNSENT_FILE
from src.tracking.logger import RunLogger


class Store:
    """An MlflowClient's `log_batch`, refusing every write like sqlite on a full disk when `full`."""

    def __init__(self) -> None:
        self.full, self.rows = False, []

    def log_batch(self, run_id: str, metrics: Any = (), params: Any = (), tags: Any = ()) -> None:
        if self.full:
            raise OSError("(sqlite3.OperationalError) database or disk is full")
        self.rows += [(m.key, m.value, m.step) for m in metrics]


def failed_run(store: Store, full: bool, folder: Path) -> tuple[StoreWriteStop, SimpleNamespace]:
    """A run whose step 0 reached the store; then its disk filled (when `full`), steps 1-3 were logged (still
    queued: a 1-hour interval) and an artifact's write failed."""
    logger = RunLogger(store, "run-1", rows_interval_s=3600.0)
    logger.log_metrics({"train/loss": 2.0}, step=0)  # the first submit is sent at once
    logger._writer.drain()  # noqa: SLF001 - the first send done, as after the run's first step
    store.full = full
    for step in (1, 2, 3):
        logger.log_metrics({"train/loss": 2.0 - step / 10}, step=step)
    saved = []
    trainer = SimpleNamespace(loggers=[logger], is_global_zero=True, checkpoint_callback=None, global_step=4,
                              fit_loop=SimpleNamespace(done=False), save_checkpoint=saved.append)
    stop = StoreWriteStop(folder)
    stop.on_exception(trainer, None, OSError(28, "No space left on device"))
    trainer.saved = saved
    return stop, trainer


@pytest.mark.parametrize("full", [True, False], ids=["store-refuses", "store-takes"])
def test_rows_the_store_refuses_after_another_failure_are_kept_beside_the_checkpoint(tmp_path: Path,
                                                                                     full: bool) -> None:
    store = Store()
    stop, trainer = failed_run(store, full, tmp_path)
    kept = tmp_path / UNSENT_FILE
    if full:
        rows = [json.loads(line) for line in kept.read_text().splitlines()]
        assert [(r["key"], r["step"]) for r in rows] == [("train/loss", s) for s in (1, 2, 3)]
        assert [s for _, _, s in store.rows] == [0], "step 0 is in the store, so it is not kept"
        assert trainer.saved == [tmp_path / "last.ckpt"] and stop.stopped_at == 4
        assert stop.kept == (3, kept)
        line = stopped_line(OSError("database or disk is full"), "run-1", "sqlite:///x.db", True, stop)
        assert "stopped at step 4" in line and "3 metric rows" in line and "kept rows are written first" in line
    else:
        assert [s for _, _, s in store.rows] == [0, 1, 2, 3], "the queued rows were sent"
        assert not kept.exists() and trainer.saved == [] and stop.stopped_at is None and stop.kept is None
        line = stopped_line(OSError("database or disk is full"), "run-1", "sqlite:///x.db", True, stop)
        assert "kept" not in line, "the line promises no kept rows when none were kept"
