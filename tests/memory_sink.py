"""A logger that keeps in memory what the monitor sends a run (rows, tags, texts, artifacts): monitor tests
without an MLflow store. It has the `RunSink` methods (`src/monitor/sink.py`) and the optional download."""

from __future__ import annotations

import shutil
import tempfile
import weakref
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers.logger import Logger


class MemoryLogger(Logger):
    def __init__(self, folder: str | Path | None = None) -> None:
        super().__init__()
        self.folder = Path(folder or tempfile.mkdtemp(prefix="memory-sink-"))
        if folder is None:  # a folder of its own goes with the logger
            weakref.finalize(self, shutil.rmtree, self.folder, True)
        self.rows: list[tuple[str, float, int]] = []
        self.lightning: list[tuple[str, float, int]] = []  # what Lightning itself logged (train/loss, ...)
        self.tags: dict[str, str] = {}
        self.texts: dict[str, str] = {}

    @property
    def name(self) -> str:
        return "memory"

    @property
    def version(self) -> str:
        return "0"

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self.lightning += [(k, float(v), int(step or 0)) for k, v in metrics.items()]

    def log_rows(self, rows: Sequence[tuple[str, float, int]], tags: Mapping[str, str] | None = None) -> None:
        self.rows += [(k, float(v), int(s)) for k, v, s in rows]
        self.tags.update(tags or {})

    def log_text(self, text: str, artifact_file: str) -> None:
        self.texts[artifact_file] = text

    def log_artifact(self, local_path: str, artifact_path: str | None = None) -> None:
        target = self.folder / (artifact_path or "")
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(local_path, target / Path(local_path).name)

    def download_artifacts(self, artifact_path: str, dst_path: str) -> str:
        target = Path(dst_path) / artifact_path
        shutil.copytree(self.folder / artifact_path, target, dirs_exist_ok=True)
        return str(target)

    def history(self, key: str) -> dict[int, float]:
        """{step: value} of one key the monitor logged (the last value where a step repeats)."""
        return {s: v for k, v, s in self.rows if k == key}

    def keys(self) -> dict[str, list[int]]:
        steps: dict[str, list[int]] = defaultdict(list)
        for k, _, s in self.rows:
            steps[k].append(s)
        return dict(steps)
