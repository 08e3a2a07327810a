"""How long the study's runs trained, read from the runs themselves (not from whichever runner call started them).

A run's time is the sum of the intervals between its own timestamps (its start, every logged `train/loss`, its
end) that are at most `GAP_S` long: a longer pause is a stop before a resume (the run waited, it did not train),
so a run stopped and resumed by id counts only the time it ran. Runs started by hand and by the runner count
alike. A block's time is the sum over the newest run of each of its jobs; with two jobs at a time on two cores
the study's wall time is about half the study's sum (`two_jobs_minutes`: an estimate, stated as one).
"""

from __future__ import annotations

import itertools
from typing import Any

from src.report.study_read import newest_runs

GAP_S = 600.0  # s: a longer silence between two timestamps of one run is a pause, not training


def active_seconds(timestamps_ms: list[int], gap_s: float = GAP_S) -> float:
    """Seconds covered by consecutive timestamps (ms since the epoch) no more than `gap_s` apart."""
    stamps = sorted(timestamps_ms)
    return sum(d for d in ((b - a) / 1000.0 for a, b in itertools.pairwise(stamps)) if d <= gap_s)


def run_seconds(mlflow_client: Any, run: Any) -> float:
    """The time a run trained, in seconds (its start, each logged `train/loss` and its end; pauses left out)."""
    stamps = [m.timestamp for m in mlflow_client.get_metric_history(run.info.run_id, "train/loss")]
    stamps += [t for t in (run.info.start_time, run.info.end_time) if t]
    return active_seconds(stamps)


def block_times(mlflow_client: Any, experiment: str) -> dict[str, Any]:
    """Per block: runs read and their summed run time (min); the study's sum and its two-jobs estimate (min)."""
    blocks: dict[str, dict[str, float]] = {}
    for (block, _arm, _seed), run in sorted(newest_runs(mlflow_client, experiment).items()):
        record = blocks.setdefault(block, {"runs": 0, "run_minutes": 0.0})
        record["runs"] += 1
        record["run_minutes"] += run_seconds(mlflow_client, run) / 60.0
    for record in blocks.values():
        record["run_minutes"] = round(record["run_minutes"], 1)
    total = sum(r["run_minutes"] for r in blocks.values())
    return {"gap_s": GAP_S, "blocks": blocks, "run_minutes": round(total, 1),
            "two_jobs_minutes": round(total / 2.0, 1)}
