"""The study report as files: `study.md` (one table per condition), `study.json` and the two figures."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from src.report import intervals as iv
from src.report import study_plots
from src.report.study import FIRST_EVENT, HEALTHY, MEASURES, Cell, build_cells, study_runs

MISSING = "—"


def num(x: float | None) -> str:
    """3 significant digits; "—" when missing."""
    return MISSING if x is None else f"{x:.3g}"


def interval(i: iv.Interval | None) -> str:
    """`0.52 [0.41, 0.63]`; `0.52` without an interval (one value); "—" without values."""
    if i is None:
        return MISSING
    if i.lo is None or i.hi is None:
        return f"{num(i.estimate)} (n={i.n})"
    return f"{num(i.estimate)} [{num(i.lo)}, {num(i.hi)}]"


def difference(i: iv.Interval | None, log: bool = False) -> str:
    """A difference from `none`, signed; for log measures as a factor ×10^d."""
    if i is None:
        return MISSING
    if log:
        factor = iv.geometric(i)
        return MISSING if factor is None else f"×{num(factor.estimate)} [{num(factor.lo)}, {num(factor.hi)}]"
    if i.lo is None or i.hi is None:
        return f"{i.estimate:+.3g}"
    return f"{i.estimate:+.3g} [{i.lo:+.3g}, {i.hi:+.3g}]"


def verdicts(cell: Cell) -> str:
    """`stalled 3/3 [0.44, 1]` for each verdict kind seen."""
    judged = sum(cell.verdicts.values())
    return "; ".join(f"{kind} {n}/{judged} [{cell.verdict_share[kind].lo:.2f}, {cell.verdict_share[kind].hi:.2f}]"
                     for kind, n in cell.verdicts.most_common()) or MISSING


def condition_table(cells: list[Cell]) -> str:
    """One condition's arms: verdicts, first event, then each measure and its difference from `none`."""
    head = ["Arm", "Seeds", "Verdicts (95% Wilson)", "Δ not healthy vs none", "First event step"]
    for m in MEASURES:
        head += [m.label, f"Δ {m.label}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in cells:
        row = [f"`{c.arm}`", str(len(c.runs)), verdicts(c), difference(c.unhealthy_vs_none),
               interval(c.summary.get(FIRST_EVENT))]
        for m in MEASURES:
            row += [interval(c.summary.get(m.key)), difference(c.vs_none.get(m.key), m.log)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def cell_record(c: Cell) -> dict[str, Any]:
    def plain(i: iv.Interval | None) -> dict[str, Any] | None:
        return None if i is None else asdict(i)

    return {"condition": c.condition, "arm": c.arm, "run_ids": [r.run_id for r in c.runs],
            "seeds": [r.seed for r in c.runs], "verdicts": dict(c.verdicts),
            "verdict_share": {k: plain(v) for k, v in c.verdict_share.items()},
            "unhealthy_vs_none": plain(c.unhealthy_vs_none),
            "summary": {k: plain(v) for k, v in c.summary.items()},
            "vs_none": {k: plain(v) for k, v in c.vs_none.items()},
            "values": {r.seed: {**r.values, FIRST_EVENT: r.first_event_step, "verdict": r.verdict} for r in c.runs}}


NOTES = """Intervals are 95%. Means over seeds: Student's t-interval; differences from `none` (same condition):
Welch's t-interval. Fractions of seeds: Wilson score interval; their difference: Newcombe's hybrid score
interval. Measures spread over decades (signal ratio, λ_max·η/2, gradient ratio and norm, training loss) are
summarized on log10: geometric mean [interval], and the difference from `none` as a factor ×10^Δ; an exact 0
counts as 1e-30. First event step: over the seeds that had an event. Min/max are over each run's logged steps,
then averaged over seeds. "—": not measured (the instrument was absent, or no seed had the event); `(n=1)`: one
value, no interval. Verdicts: each run's `health.verdict`, its first sustained problem or `healthy`."""


def write_study_report(mlflow_client: Any, experiment: str, out_dir: Path, command: str,
                       wall_note: str = "") -> Path:
    """Tables, figures and `study.md` into `out_dir`; returns the markdown file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = study_runs(mlflow_client, experiment)
    if not runs:
        raise SystemExit(f"experiment {experiment!r}: no study runs (overrides experiment=study_* and +study/arm=...)")
    cells = build_cells(runs)
    dose = study_plots.dose_response(cells, out_dir / "dose_response.png")
    heat = study_plots.verdict_heatmap(cells, out_dir / "verdict_heatmap.png")
    (out_dir / "study.json").write_text(json.dumps({"experiment": experiment, "cells": [cell_record(c) for c in cells]},
                                                   indent=1, default=str))
    kept = sum(len(c.runs) for c in cells)
    conditions = list(dict.fromkeys(c.condition for c in cells))
    lines = [f"# Study report: experiment `{experiment}`", "",
             f"{kept} runs ({len(runs)} read; the latest per condition x arm x seed) in {len(cells)} cells, "
             f"{len(conditions)} conditions · store `{mlflow_client.tracking_uri}` · generated "
             f"{datetime.now():%Y-%m-%d %H:%M} by `{command}`", ""]
    timed = [r.seconds for c in cells for r in c.runs if r.seconds is not None]
    if timed:
        lines += [f"Runs' own wall time (MLflow start to end): {sum(timed):.0f} s over {len(timed)} runs, "
                  f"{sum(timed) / len(timed):.1f} s a run; / 2 parallel jobs = {sum(timed) / 2 / 60:.1f} min "
                  "(measured on the machine as it was: inflated by its load; workers' start-up not included).", ""]
    if wall_note:
        lines += [wall_note, ""]
    lines += [NOTES, "", "## Verdicts: condition x arm", "",
              "![verdict heat map](verdict_heatmap.png)" if heat else "No verdicts.", "",
              "## Dose-response per regularizer", "",
              "![dose-response](dose_response.png)" if dose else "No dosed arm.", ""]
    for condition in conditions:
        mine = [c for c in cells if c.condition == condition]
        healthy_none = next((c.verdicts.get(HEALTHY, 0) for c in mine if c.arm == "none"), None)
        lines += [f"## `{condition}`", "",
                  f"Block `experiment=study_{condition}`; `none` healthy in "
                  f"{MISSING if healthy_none is None else healthy_none} of its seeds.", "",
                  condition_table(mine), ""]
    md = out_dir / "study.md"
    md.write_text("\n".join(lines))
    return md
