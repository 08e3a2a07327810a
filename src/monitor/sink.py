"""Where the monitor's records go: the run the trainer logs into, through a small interface.

The monitor writes many steps of many metrics at once (one flush), a few tags, and files
(`events.jsonl`, plots, the `health/` record). Lightning's `Logger.log_metrics` takes one step at a time, so the
job's logger offers these three methods besides (`src/tracking/logger.py::RunLogger`
implements them on the job's MLflow run); any logger that has them will do, and a trainer
without one simply gets no records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import pytorch_lightning as pl

Row = tuple[str, float, int]  # (metric key, value, optimizer step)


@runtime_checkable
class RunSink(Protocol):
    def log_rows(self, rows: Sequence[Row], tags: Mapping[str, str] | None = None) -> None:
        """Metric rows (several steps of a key allowed; non-finite values left out) and tags, in one call."""

    def log_text(self, text: str, artifact_file: str) -> None:
        """A text artifact at `artifact_file` (e.g. `events.jsonl`), replacing an earlier one."""

    def log_artifact(self, local_path: str, artifact_path: str | None = None) -> None:
        """A local file as an artifact under `artifact_path` (replacing one of the same name)."""


# Optional beside these: `download_artifacts(artifact_path, dst_path) -> str` (the run's artifacts copied
# to a local folder). A resumed run uses it to consolidate the record parts of its earlier processes.


def run_sink(trainer: pl.Trainer) -> RunSink | None:
    """The trainer's first logger that is a `RunSink`, or None."""
    return next((logger for logger in trainer.loggers if isinstance(logger, RunSink)), None)
