"""The Lightning logger of a job: writes into the job's existing MLflow run through the job's client.

Why not Lightning's `MLFlowLogger`: it makes its own `MlflowClient` (the project's lock-retrying
client can only be swapped in through a private attribute), and its `finalize` sets the run's
status, which belongs to the run context (`src/lifecycle/run_context.py`): only it knows whether
the job completed, diverged, failed or was interrupted. This logger uses Lightning's public
`Logger` base class and does only what a run needs from Lightning: metrics, in one `log_batch`
per logging step.

A diverged run produces NaN/Inf losses (`train/loss`, `val/loss`); MLflow stores them and its UI
then fails to draw the metric. They are dropped here, where Lightning has already turned them into
Python floats (no extra device synchronization); the gradient-health monitor records that and
where the run went non-finite (`grad/nonfinite`, `events.jsonl`).

Writes are off the training thread: a sqlite `log_batch` commit costs milliseconds (tens on a busy
disk), more than a small network's step. `log_metrics` hands its rows to a background writer
(`src/background.py`: one thread, a bounded queue, rows sent together at most every
`rows_interval_s` seconds, each send retried while sqlite is locked); `finalize`, which Lightning
calls at the end of every `fit`/`test`, on an exception and on a signal, sends what is queued and
waits, so the run's status is set after its last metric is in. A write that failed is raised there
after a successful fit; after a failed one it is logged with the number of rows lost, and the
original error goes on. After each checkpoint is saved the queue is drained too (`after_save_checkpoint`):
a SIGKILL loses at most the step metrics queued since the last checkpoint, and a resume re-trains (and
re-logs) exactly those steps.
"""

from __future__ import annotations

import logging
from argparse import Namespace
from collections.abc import Mapping, Sequence
from typing import Any

from pytorch_lightning.loggers.logger import Logger, rank_zero_experiment
from pytorch_lightning.utilities import rank_zero_only

from src.tracking.client import log_batch

log = logging.getLogger(__name__)


class RunLogger(Logger):
    """Logs a trainer's metrics into the MLflow run `run_id` with `client` (an `MlflowClient` or the
    project's lock-retrying wrapper of one). Params, tags and the run's status are not its business.
    """

    def __init__(self, client: Any, run_id: str, rows_interval_s: float = 2.0) -> None:
        super().__init__()
        self._client = client
        self._run_id = run_id
        self.rows_interval_s = rows_interval_s  # at most this long between two sends (the UI lags by as much)
        self._writer: Any = None  # the background writer, started at the first metrics
        self._unsent: list[tuple[str, float, int]] = []  # rows a closed writer could not send (`take_unsent`)

    def __getstate__(self) -> dict[str, Any]:  # a copy (a spawned process) starts its own writer
        return {**self.__dict__, "_writer": None, "_unsent": []}

    @property
    def name(self) -> str:
        return "mlflow"

    @property
    def version(self) -> str:
        return self._run_id

    @property
    def run_id(self) -> str:
        return self._run_id

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        """The MLflow client (a dummy on ranks other than 0, as every Lightning logger)."""
        return self._client

    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        """Nothing: the run's params are the resolved config, logged when the run is created."""

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Queued for the background writer: returns at once (see the module's docstring)."""
        from src.background import BackgroundWriter, FlushOutput

        if self._writer is None:
            self._writer = BackgroundWriter(self, None, self.rows_interval_s, name="gradreg-metrics-writer")
        self._writer.submit(FlushOutput(None, [(k, v, step or 0) for k, v in metrics.items()], None, None))

    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        """Send what is queued and wait: a run killed later and resumed from this checkpoint re-trains only
        the steps after it, so every step before it must be in the store already."""
        if self._writer is not None:
            self._writer.drain()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Send every queued metric and wait (Lightning calls it at the end of each fit/test, after a failure,
        on a signal). A failed write is raised after success, logged with the rows it lost otherwise."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            writer.close()
        except Exception as exc:
            self._unsent += writer.unsent
            if status == "success":
                raise
            log.error("%d metric rows were not written to run %s (%s): %r", writer.lost_rows, self._run_id,
                      status, exc)

    @property
    def store_failure(self) -> BaseException | None:
        """The error of a metric write the store refused (a full disk, a lock held too long), or None; read
        without waiting for the writer."""
        return self._writer.failure if self._writer is not None else None

    @property
    def unsent_rows(self) -> int:
        """Rows a closed writer could not send that nobody took yet (`take_unsent`)."""
        return len(self._unsent)

    def take_unsent(self) -> list[tuple[str, float, int]]:
        """Close the writer (sending what it can) and hand over, in order, the (key, value, step) rows the store
        did not take; they are then this caller's to keep (`src/lifecycle/unsent_rows.py`)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.close()
            except Exception:  # noqa: BLE001 - the failed rows are in writer.unsent, handed over below
                self._unsent += writer.unsent
        rows, self._unsent = self._unsent, []
        return rows

    # the monitor's `RunSink` interface (src/monitor/sink.py): many steps at once, tags, files
    @rank_zero_only
    def log_rows(self, rows: Sequence[tuple[str, float, int]], tags: Mapping[str, str] | None = None) -> None:
        log_batch(self._client, self._run_id, tags=tags, metrics=rows)

    @rank_zero_only
    def log_text(self, text: str, artifact_file: str) -> None:
        self._client.log_text(self._run_id, text, artifact_file)

    @rank_zero_only
    def log_artifact(self, local_path: str, artifact_path: str | None = None) -> None:
        self._client.log_artifact(self._run_id, local_path, artifact_path)

    def download_artifacts(self, artifact_path: str, dst_path: str) -> str:
        """The run's artifacts under `artifact_path`, copied into `dst_path`; returns the local path."""
        return self._client.download_artifacts(self._run_id, artifact_path, dst_path)
