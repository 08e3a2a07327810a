"""The benchmark's table and its JSON: milliseconds per training step, median over repeats, the spread
(fastest-slowest repeat) and the ratio to the bare loop; then the default run's wall time.

JSON: `{model: {mode: ms_per_step}}` (medians), plus `"default_run": {"wall_s", "peak_rss_mib", "test_acc"}`
when the default run was timed and `"context": {"load_1min_start", "load_1min_end", "threads", "repeats"}`:
every value is a number.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from bench.default_run import DefaultRuns
from bench.modes import BARE
from bench.steps import ModelRun


def cell(times: list[float], base: float | None) -> str:
    med = statistics.median(times)
    ratio = f" ×{med / base:.2f}" if base else ""
    return f"{med:.2f}{ratio} ({min(times):.2f}-{max(times):.2f})"


def rows(results: list[tuple[ModelRun, dict[str, list[float]]]]) -> list[str]:
    modes = list(results[0][1]) if results else []
    lines = ["| model | " + " | ".join(modes) + " |", "|---|" + "---|" * len(modes)]
    for run, times in results:
        base = statistics.median(times[BARE]) if BARE in times else None
        cells = [cell(times[m], base if m != BARE else None) for m in modes]
        lines.append(f"| {run.label()} | " + " | ".join(cells) + " |")
    return lines


def default_run_line(runs: DefaultRuns, overrides: tuple[str, ...]) -> str:
    command = " ".join(["python -m src.train", *overrides])
    acc = "" if runs.test_acc is None else f", test/acc {runs.test_acc:.4f}"
    return (f"default run `{command}`: {runs.wall_s:.1f} s wall (median of {len(runs.walls_s)}: "
            f"{', '.join(f'{w:.1f}' for w in runs.walls_s)}), peak RSS {runs.peak_rss_mib:.0f} MiB{acc}")


def figures(
    results: list[tuple[ModelRun, dict[str, list[float]]]], default: DefaultRuns | None, context: dict[str, float]
) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, Any]] = {
        run.model: {mode: round(statistics.median(t), 4) for mode, t in times.items()} for run, times in results
    }
    if default is not None:
        out["default_run"] = {"wall_s": round(default.wall_s, 2), "peak_rss_mib": round(default.peak_rss_mib, 1)}
        if default.test_acc is not None:
            out["default_run"]["test_acc"] = default.test_acc
    out["context"] = context
    return out


def write_json(path: Path, data: dict[str, dict[str, float]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
