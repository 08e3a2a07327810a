"""The benchmark's table and its JSON: milliseconds per training step, median over repeats, the spread
(fastest-slowest repeat) and the ratio to the bare loop; then the default run's wall time.

JSON: `{model: {mode: ms_per_step}}` (medians); when the default run was timed, `"default_run"`:
`{"run": P, "bare": P, "baseline": P (with --baseline), "libraries": P, "lightning": P, "wall_ratio",
"cpu_ratio", "baseline_wall_ratio", "baseline_cpu_ratio", "imports": {"run": I, "baseline": I}}`,
P = `{"wall_s", "cpu_s", "first_step_cpu_s", "gc_cpu_s", "peak_rss_mib", "test_acc", "walls_s"}` (medians; the
bare process has no first step nor accuracy, the floors no accuracy nor garbage collection figure (only runs of
`src.train` report it); the libraries' "first step" is the end of their imports: `bench/default_run.py` says what
each floor runs) and
I = `{"total_s", <package>: s}`; `"ops"`: `{mode: {"ops", "views"}}` per flush window of ResNet-152
(`bench/ops.py`) when counted; and `"context": {"load_1min_start", "load_1min_end", "threads", "repeats"}`.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from bench.default_run import UNUSED, DefaultRuns, Timings
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


def _process(t: Timings) -> dict[str, Any]:
    out: dict[str, Any] = {"wall_s": round(t.wall_s, 2), "cpu_s": round(t.cpu_s, 2),
                           "peak_rss_mib": round(t.peak_rss_mib, 1), "walls_s": [round(w, 2) for w in t.walls_s]}
    if t.first_step_cpu_s is not None:
        out["first_step_cpu_s"] = round(t.first_step_cpu_s, 2)
    if t.gc_cpu_s is not None:
        out["gc_cpu_s"] = round(t.gc_cpu_s, 2)
    if t.test_acc is not None:
        out["test_acc"] = t.test_acc
    return out


def default_run_figures(runs: DefaultRuns) -> dict[str, Any]:
    out: dict[str, Any] = {"run": _process(runs.run), "bare": _process(runs.bare), "imports": runs.imports,
                           "wall_ratio": round(runs.run.wall_s / runs.bare.wall_s, 3),
                           "cpu_ratio": round(runs.run.cpu_s / runs.bare.cpu_s, 3)}
    for name, floor in (("libraries", runs.libraries), ("lightning", runs.lightning)):
        if floor is not None:
            out[name] = _process(floor)
    if runs.baseline is not None:
        out["baseline"] = _process(runs.baseline)
        out["baseline_wall_ratio"] = round(runs.baseline.wall_s / runs.bare.wall_s, 3)
        out["baseline_cpu_ratio"] = round(runs.baseline.cpu_s / runs.bare.cpu_s, 3)
    return out


def default_run_lines(figures: dict[str, Any], overrides: tuple[str, ...]) -> list[str]:
    """The default run's table (from its JSON figures): each process, its ratios to the bare one, imports."""
    command = " ".join(["python -m src.train", *overrides])
    bare = figures["bare"]
    lines = [f"default run `{command}` beside a bare process of the same steps "
             f"(median of {len(bare['walls_s'])} interleaved rounds)", "",
             "| process | wall s | wall ×bare | CPU s | CPU ×bare | CPU s to the first step | garbage collection "
             "CPU s | imports s | peak RSS MiB | test/acc |", "|---|---|---|---|---|---|---|---|---|---|"]
    names = {"bare": "bare PyTorch, same steps", "libraries": "the libraries' imports alone (floor)",
             "lightning": "Lightning alone, same steps (floor)", "baseline": "default run, baseline",
             "run": "default run"}
    for kind in ("bare", "libraries", "lightning", "baseline", "run"):
        if kind not in figures:
            continue
        p = figures[kind]
        ratio = "" if kind == "bare" else f"×{p['wall_s'] / bare['wall_s']:.2f}"
        cpu_ratio = "" if kind == "bare" else f"×{p['cpu_s'] / bare['cpu_s']:.2f}"
        first = f"{p['first_step_cpu_s']:.2f}" if "first_step_cpu_s" in p else ""
        collections = f"{p['gc_cpu_s']:.2f}" if "gc_cpu_s" in p else ""
        imports = f"{figures['imports'][kind]['total_s']:.2f}" if kind in figures["imports"] else ""
        acc = f"{p['test_acc']:.4f}" if "test_acc" in p else ""
        lines.append(f"| {names[kind]} | {p['wall_s']:.1f} | {ratio} | {p['cpu_s']:.1f} | {cpu_ratio} | {first} | "
                     f"{collections} | {imports} | {p['peak_rss_mib']:.0f} | {acc} |")
    for kind, imports in figures["imports"].items():
        largest = ", ".join(f"{name} {s:.2f}" for name, s in imports.items() if name not in ("total_s", *UNUSED))
        unused = ", ".join(f"{name} {imports[name]:.2f}" for name in UNUSED if name in imports)
        lines.append(f"\nimports of the {names[kind]} (`-X importtime`, s, cumulative from outside the package): "
                     f"{largest}" + (f"; imported by libraries, unused before the first step: {unused}"
                                     if unused else ""))
    return lines


def figures(
    results: list[tuple[ModelRun, dict[str, list[float]]]], default: DefaultRuns | None, context: dict[str, float],
    ops: dict[str, dict[str, int]] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        run.model: {mode: round(statistics.median(t), 4) for mode, t in times.items()} for run, times in results
    }
    if default is not None:
        out["default_run"] = default_run_figures(default)
    if ops is not None:
        out["ops"] = ops
    out["context"] = context
    return out


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
