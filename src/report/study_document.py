"""The study report as files: `study.md` (per condition two tables), `study.json` (`study_json.py`: every
number the prose needs) and the two figures."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from src.report import study_plots
from src.report.equivalence import ACCURACY_MARGIN, VERDICT_MARGIN, seeds_for_equivalence
from src.report.pooled import pooled_rates
from src.report.states import FIXED_BEFORE
from src.report.study import HEALTHY, MEASURES, Cell, StudyRun, build_cells, latest_per_seed, study_runs
from src.report.study_format import MISSING
from src.report.study_json import SHORT, cell_text, study_numbers, study_record


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def verdict_table(cells: list[Cell]) -> str:
    """Verdicts over time and doses: what happened in each arm, against its reference, seed by seed."""
    head = ["Arm", "Pairing", "Verdicts (95% Wilson)", "Δ failed (paired, Newcombe)",
            f"Equivalence of failed (±{VERDICT_MARGIN:g})", "Time in states (mean of seeds)",
            "End state; recovered", "First event step", f"Fixed < step {FIXED_BEFORE}", "L2 cumulative decay"]
    lines = [_row(head), "|" + "---|" * len(head)]
    for c in cells:
        t = cell_text(c)
        end = ", ".join(f"{k} {n}" for k, n in sorted(c.time.final.items())) if c.time and c.time.final else MISSING
        recovered = f"; {c.time.recovered} recovered" if c.time and c.time.recovered else ""
        fixed = MISSING if c.fixed_early is None else ("yes" if c.fixed_early else "no")
        lines.append(_row([f"`{c.arm}`", t.get("pairing", "reference"), t["verdicts"], t.get("verdict_diff", MISSING),
                           t.get("verdict_tost", MISSING), t["time"], end + recovered, t["first_event_step"], fixed,
                           t["decay"]]))
    return "\n".join(lines)


def measure_table(cells: list[Cell]) -> str:
    """Accuracy with its equivalence test, then each measure and its paired difference."""
    head = ["Arm", "Final test acc (95% logit)", "Δ acc (paired)", f"Equivalence of acc (±{ACCURACY_MARGIN:g})"]
    for m in MEASURES[1:]:
        head += [m.label, f"Δ {m.label}"]
    lines = [_row(head), "|" + "---|" * len(head)]
    for c in cells:
        t = cell_text(c)
        row = [f"`{c.arm}`", t["acc"], t.get("acc_diff", MISSING), t.get("acc_tost", MISSING)]
        for m in MEASURES[1:]:
            row += [t[SHORT[m.key]], t.get(f"{SHORT[m.key]}_diff", MISSING)]
        lines.append(_row(row))
    return "\n".join(lines)


NOTES = f"""Intervals are 95%. **Pairing**: the same seed gives the same initialisation and data order in every
arm of a condition, so each arm is compared with its reference (`none`; for `<rescue>+<arm>` the rescue alone)
seed by seed: the per-seed differences' mean with its Student's t-interval, n = matched seeds; seeds present on
one side only are left out and named; Welch's unpaired interval only where no seed pairs (labelled). Every
paired difference exactly 0: "identical in every seed". **Verdicts**: each run's `health.verdict`, counted
with Wilson's interval; "failed" is an event verdict; its paired difference (arm − reference) with Newcombe's
paired score interval, pairs with an `inconclusive` side (too short to judge) left out and counted.
**Equivalence** (TOST, margins fixed in advance, `src/report/equivalence.py`): final test accuracy within
±{ACCURACY_MARGIN:g} (two s.d. of one run's test-set noise), the fraction failed within ±{VERDICT_MARGIN:g};
"equivalent" when the 90% interval lies inside the margin, "different" when the 95% interval excludes 0,
else "inconclusive (n too small)" — an interval containing 0 is never read as "no effect". With all seeds
agreeing, equivalence of verdicts needs n ≥ {seeds_for_equivalence()} seeds. **Bounded quantities**: accuracy
and dead fraction with the t-interval of their logits (inside [0, 1]; exactly 0 or 1 enter as 1e-6 or
1 − 1e-6); fractions of seeds with Wilson. **Log measures** (signal ratio, λ_max·η/2, gradient ratio and norm,
training loss): geometric mean [interval], differences as a factor ×10^Δ; a value of 0, below 0 or non-finite
has no log and is left out, counted and named in the cell ("all 3 values 0" when none is left), never floored.
**Time in states**: mean over seeds of `health/frac_<state>`; end state `health.final_state`, recovered
`health.recovered`. **First event step**: mean and range over the seeds that had one. **Fixed < step
{FIXED_BEFORE}**: every seed's first event before step {FIXED_BEFORE}.
**L2 cumulative decay**: 2·η·λ·T/(1−β) with the run's own η, λ (Elastic Net: its L2 part), momentum β and
steps trained T; decoupled: 2·η·λ·T; penalty with Adam: not comparable (inputs printed). "—": not measured."""


def header(experiment: str, cells: list[Cell], runs: int, data: dict[str, Any], source: str, command: str,
           wall_note: str) -> list[str]:
    kept = sum(len(c.runs) for c in cells)
    conditions = list(dict.fromkeys(c.condition for c in cells))
    nums = study_numbers(data)
    fixed = data["fixed_early"]
    lines = [f"# Study report: experiment `{experiment}`", "",
             f"{kept} runs ({runs} read; the latest per condition x arm x seed) in {len(cells)} cells, "
             f"{len(conditions)} conditions · {source} · generated {datetime.now():%Y-%m-%d %H:%M} by "
             f"`{command}`", ""]
    if wall := data["runs_wall_time"]:
        lines += [f"Runs' own wall time (MLflow start to end): {wall['seconds']:.1f} s over {wall['runs']} runs, "
                  f"{wall['per_run']:.1f} s a run (measured on the machine as it was).", ""]
    if wall_note:
        lines += [wall_note, ""]
    flip = data["conventions"]["smallest_detectable_flip"]
    lines += ["## Pooled over the study", "",
              f"- Rescues by a regularizer (healthy where the paired reference run failed): "
              f"{nums['pooled/regularizer/rescues']}; harms (failed where the reference was healthy): "
              f"{nums['pooled/regularizer/harms']}; {nums['pooled/regularizer/left_out']}.",
              f"- Rescues by a remedy: {nums['pooled/remedy/rescues']}; harms: {nums['pooled/remedy/harms']}; "
              f"{nums['pooled/remedy/left_out']}.",
              f"- Cells whose verdict was fixed before step {FIXED_BEFORE} (every seed): {nums['fixed_early/all']}; "
              f"regularizer cells of the failing conditions ({', '.join(fixed['failing_conditions']) or 'none'}): "
              f"{nums['fixed_early/regularizer_failing']}.",
              f"- With {data['conventions']['matched_seeds_max']} matched seeds the smallest flip of verdicts a "
              f"paired interval can tell from 0: " + (f"{flip} seeds flipping the same way." if flip else "none."),
              ""]
    return lines


def write_study_report(mlflow_client: Any, experiment: str, out_dir: Path, command: str,
                       wall_note: str = "") -> Path:
    """Tables, figures, `study.json` and `study.md` of an MLflow experiment's study runs into `out_dir`;
    returns the markdown file."""
    runs = study_runs(mlflow_client, experiment)
    if not runs:
        raise SystemExit(f"experiment {experiment!r}: no study runs (overrides experiment=study_*/study2_* and "
                         "+study/arm=...)")
    return write_report_of_runs(runs, experiment, out_dir, f"store `{mlflow_client.tracking_uri}`", command,
                                wall_note)


def write_report_of_runs(runs: list[StudyRun], experiment: str, out_dir: Path, source: str, command: str,
                         wall_note: str = "") -> Path:
    """The same report of runs already read (from MLflow, or a saved `study.json`: `runs_from_study_json`)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cells = build_cells(runs)
    data = study_record(experiment, cells, pooled_rates(latest_per_seed(runs)), len(runs))
    (out_dir / "study.json").write_text(json.dumps(data, indent=1, default=str))
    dose = study_plots.dose_response(cells, out_dir / "dose_response.png")
    heat = study_plots.verdict_heatmap(cells, out_dir / "verdict_heatmap.png")
    lines = header(experiment, cells, len(runs), data, source, command, wall_note)
    lines += [NOTES, "", "## Time in each state: condition x arm", "",
              "![verdict heat map](verdict_heatmap.png)" if heat else "No verdicts.", "",
              "## Dose-response on the doses run", "",
              "![dose-response](dose_response.png)" if dose else "No dosed arm.", ""]
    for condition in dict.fromkeys(c.condition for c in cells):
        mine = [c for c in cells if c.condition == condition]
        none = next((c for c in mine if c.arm == "none"), None)
        healthy = MISSING if none is None else f"{none.verdicts.get(HEALTHY, 0)} of {none.judged}"
        lines += [f"## `{condition}`", "", f"`none` healthy in {healthy} seeds.", "",
                  "Verdicts over time and doses:", "", verdict_table(mine), "",
                  "Accuracy and measures (each against the arm's reference, paired by seed):", "",
                  measure_table(mine), ""]
    md = out_dir / "study.md"
    md.write_text("\n".join(lines))
    return md


__all__ = ["write_study_report"]
