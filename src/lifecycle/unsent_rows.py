"""Metric rows the store refused, kept beside the run's checkpoint and written into the run when it is resumed.

When the store stops taking writes (its disk full, its lock held too long), the steps already trained have
rows that never reached it. The checkpoint saved at that step makes a resume start after them, so without
these rows the run would miss those steps for ever (and a resume from an older checkpoint would log others
twice). They go, in order, to `unsent_metrics.jsonl` in the run's checkpoint folder (one JSON object a line:
key, value, step), on the checkpoint's disk rather than the store's; `resume=<run_id>` writes them into the run
before it trains, then removes the file. Every step then has its rows exactly once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

UNSENT_FILE = "unsent_metrics.jsonl"


def keep_unsent(folder: str | Path, rows: Sequence[tuple[str, float, int]]) -> Path | None:
    """Append `rows` to the folder's unsent file (fsync'd); return it, or None when there were none."""
    if not rows:
        return None
    path = Path(folder) / UNSENT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        for key, value, step in rows:
            handle.write(json.dumps({"key": key, "value": float(value), "step": int(step)}) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return path


def has_unsent(folder: str | Path) -> bool:
    return (Path(folder) / UNSENT_FILE).is_file()


def replay_unsent(mlflow_client: Any, run_id: str, folder: str | Path) -> int:
    """Write the folder's unsent rows into the run (one `log_batch`), then remove the file; the rows written.
    A store that still refuses raises, and the file stays for the next resume."""
    from src.tracking.client import log_batch

    path = Path(folder) / UNSENT_FILE
    if not path.is_file():
        return 0
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    log_batch(mlflow_client, run_id, metrics=[(r["key"], r["value"], r["step"]) for r in rows])
    path.unlink()
    return len(rows)
