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
"""

from __future__ import annotations

from argparse import Namespace
from collections.abc import Mapping, Sequence
from typing import Any

from pytorch_lightning.loggers.logger import Logger, rank_zero_experiment
from pytorch_lightning.utilities import rank_zero_only

from src.tracking.client import log_batch


class RunLogger(Logger):
    """Logs a trainer's metrics into the MLflow run `run_id` with `client` (an `MlflowClient` or the
    project's lock-retrying wrapper of one). Params, tags and the run's status are not its business.
    """

    def __init__(self, client: Any, run_id: str) -> None:
        super().__init__()
        self._client = client
        self._run_id = run_id

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
        log_batch(self._client, self._run_id, metrics=[(k, v, step or 0) for k, v in metrics.items()])

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
