"""Writes on one background thread (the monitor's flushes, the logger's step metrics): record parts at
once, MLflow rows at most every few seconds.

Why: a flush's statistics are computed on the training thread (they decide a stop), but writing them
costs milliseconds a small network's step cannot hide: a sqlite `log_batch` transaction is 10-30 ms
on this project's 2-core machine, while LeNet-5 trains a step in a few. One worker thread takes the
writes in order, so the training thread never waits for the store:

- each flush's rows are appended to the `health/` record part and the part is uploaded at once
  (microseconds to append, one file copy to upload): a killed run loses at most its last flush window;
- the MLflow metric rows, tags and `events.jsonl` of consecutive flushes are sent together, at most
  every `rows_interval_s` seconds (same rows and steps, fewer transactions): the UI lags by that much;
- `drain()` sends everything queued and waits (at the end of training, and on an exception, so a
  failing run still has everything it measured); an error in a write is raised by the next `drain()`,
  and `lost_rows` counts the metric rows it kept from the store (each send is one `log_batch`, which
  retries while sqlite is locked: `src/tracking/client.py`); those rows are kept in `unsent`, and `failure`
  tells the training thread at once, without waiting (`src/lifecycle/store_write_stop.py` stops there);
- the queue is bounded (`max_pending` submissions): a store that stalls (a paused writer holding its
  lock, a full disk) makes `submit` wait instead of filling memory.

The job's logger (`src/tracking/logger.py`) sends Lightning's step metrics through one as well.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


class PartWriter(Protocol):
    """Where a flush's record rows go (the monitor's `RecordWriter`): `append` returns the file of a part
    that is complete and ready to upload, or None."""

    def append(self, summary: Any) -> Any: ...

    def close(self) -> None: ...

DRAIN = object()
STOP = object()


@dataclass
class FlushOutput:
    summary: Any  # rows for the record, a `Summary` of src/monitor/stats.py (None: no record)
    metrics: list[tuple[str, float, int]]
    tags: dict[str, str] | None
    events_jsonl: str | None  # the whole `events.jsonl` after this flush, when it changed
    jobs: tuple[Callable[[], Any], ...] = ()  # other writes of this flush (a step image), run in order


class BackgroundWriter:
    """Writes `FlushOutput`s into `sink` (a `RunSink`) and the record parts of `writer`, in order."""

    def __init__(self, sink: Any, writer: PartWriter | None, rows_interval_s: float = 2.0,
                 max_pending: int = 256, name: str = "gradreg-health-writer") -> None:
        self.sink, self.writer, self.rows_interval_s = sink, writer, rows_interval_s
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_pending)
        self.unsent: list[tuple[str, float, int]] = []  # metric rows a failed send kept from the store, in order
        self._errors: list[BaseException] = []
        self._rows: list[tuple[str, float, int]] = []
        self._tags: dict[str, str] = {}
        self._jsonl: str | None = None
        self._sent_at = 0.0
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    @property
    def lost_rows(self) -> int:
        """How many metric rows failed sends kept from the store (they are in `unsent`)."""
        return len(self.unsent)

    @property
    def failure(self) -> BaseException | None:
        """The first error a write had and no `drain()` has raised yet; None while every write succeeded. Read
        without waiting, so the training thread can stop at its next step once the store refuses writes."""
        return self._errors[0] if self._errors else None

    def submit(self, output: FlushOutput) -> None:
        self._queue.put(output)

    def _send_rows(self) -> None:
        if self._rows or self._tags:
            rows, tags, self._rows, self._tags = self._rows, self._tags, [], {}
            try:
                self.sink.log_rows(rows, tags or None)
            except BaseException:
                self.unsent += rows
                raise
        if self._jsonl is not None:
            text, self._jsonl = self._jsonl, None
            self.sink.log_text(text, "events.jsonl")
        self._sent_at = time.monotonic()

    def _work(self) -> None:
        while True:
            waiting = self._rows or self._tags or self._jsonl is not None
            timeout = max(0.0, self._sent_at + self.rows_interval_s - time.monotonic()) if waiting else None
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = None  # the interval is over: send what waits
            try:
                if isinstance(item, FlushOutput):
                    self._take(item)
                if item is None or item is DRAIN or item is STOP or (
                        time.monotonic() - self._sent_at >= self.rows_interval_s):
                    self._send_rows()
            except BaseException as exc:  # noqa: BLE001 - handed to the training thread at drain()
                self._errors.append(exc)
            finally:
                if item is not None:
                    self._queue.task_done()
            if item is STOP:
                return

    def _take(self, output: FlushOutput) -> None:
        if self.writer is not None and output.summary is not None:
            part = self.writer.append(output.summary)
            if part is not None:
                self.sink.log_artifact(str(part), "health/parts")
        for job in output.jobs:
            job()
        self._rows += output.metrics
        self._tags.update(output.tags or {})
        if output.events_jsonl is not None:
            self._jsonl = output.events_jsonl

    def drain(self) -> None:
        """Write everything submitted, then return; raise the first error a write had."""
        if self._thread.is_alive():
            self._queue.put(DRAIN)
            self._queue.join()
        if self._errors:
            error, self._errors = self._errors[0], []
            raise error

    def close(self) -> None:
        """Drain, close the record part, end the thread."""
        try:
            self.drain()
        finally:
            if self._thread.is_alive():
                self._queue.put(STOP)
                self._thread.join()
            if self.writer is not None:
                self.writer.close()
