"""The study's numbers: runs grouped by condition x arm, each measure with its interval, and each arm against
its reference paired by seed.

Runs: `study_read.py` (what is read from MLflow, and how each measure is reduced over a run); arms and
their references: `study_arms.py`. Per cell:

- verdict counts with Wilson intervals; the paired table of failed runs against the reference (Newcombe paired);
- each measure's summary over seeds: accuracy-like fractions with the logit t-interval (inside [0, 1]),
  log measures as geometric means (zeros, negatives and non-finite values left out and counted), others
  with the t-interval;
- each measure's difference from the reference, paired by seed (`paired.py`), Welch only when nothing pairs;
- equivalence (TOST, `equivalence.py`) of final test accuracy and of the fraction failed (an event verdict);
- time in each state, end states, recoveries, whether the verdict was fixed before step 30 (`states.py`);
- the L2 dose each run received (`doses.py`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from src.report import intervals as iv
from src.report.doses import Dose, cell_doses
from src.report.equivalence import ACCURACY_MARGIN, Equivalence, tost, tost_verdicts
from src.report.paired import Difference, Pairing, VerdictPairs, difference, pair, verdict_pairs
from src.report.states import TimeInStates, fixed_early, time_in_states
from src.report.study_arms import FAMILIES, arm_family, arm_order, reference_arm, study_labels
from src.report.study_read import FIRST_EVENT, MEASURES, Measure, StudyRun, latest_per_seed, read_run, study_runs

HEALTHY = "healthy"
ACCURACY = "test/acc"
VERDICT = "verdict"  # the equivalence key of the fraction of seeds failed

__all__ = ["FAMILIES", "FIRST_EVENT", "HEALTHY", "MEASURES", "Cell", "Measure", "StudyRun", "arm_family",
           "arm_order", "build_cells", "latest_per_seed", "read_run", "study_labels", "study_runs"]


@dataclass
class Cell:
    """One condition x arm over its seeds, with intervals and the paired differences from its reference."""

    condition: str
    arm: str
    runs: list[StudyRun] = field(default_factory=list)
    verdicts: Counter[str] = field(default_factory=Counter)
    verdict_share: dict[str, iv.Interval] = field(default_factory=dict)  # kind -> fraction of seeds (Wilson)
    reference: str | None = None  # the arm compared with (None for `none`, or when it was not run)
    pairing: Pairing | None = None
    verdict_pairs: VerdictPairs | None = None  # failed, arm vs reference, per matched seed
    summary: dict[str, iv.Interval | None] = field(default_factory=dict)  # measure -> mean / geometric mean
    left_out: dict[str, dict[str, int]] = field(default_factory=dict)  # measure -> reason -> values left out
    vs_reference: dict[str, Difference] = field(default_factory=dict)  # measure -> paired Δ (log10 for log ones)
    equivalence: dict[str, Equivalence] = field(default_factory=dict)  # "test/acc", "verdict" -> TOST
    time: TimeInStates | None = None
    fixed_early: bool | None = None  # every seed's first event before step 30
    doses: list[Dose] = field(default_factory=list)

    def samples(self, key: str, log: bool = False) -> tuple[list[float], dict[str, int]]:
        """The seeds' values of one measure (or of the first-event step) and what was left out, by reason."""
        if key == FIRST_EVENT:
            return [float(r.first_event_step) for r in self.runs if r.first_event_step is not None], {}
        raw = [v for r in self.runs if (v := r.values.get(key)) is not None]
        if log:
            return iv.split_log10(raw)
        kept = [v for v in raw if v == v and abs(v) != float("inf")]
        return kept, ({"non-finite": len(raw) - len(kept)} if len(raw) > len(kept) else {})

    @property
    def unhealthy(self) -> int:
        return sum(n for kind, n in self.verdicts.items() if kind != HEALTHY)

    @property
    def judged(self) -> int:
        return sum(self.verdicts.values())


def _measure_value(key: str):  # noqa: ANN202
    if key == FIRST_EVENT:
        return lambda r: None if r.first_event_step is None else float(r.first_event_step)
    return lambda r: r.values.get(key)


def summarize(cell: Cell, reference: Cell | None) -> None:
    """Fill the cell's summaries, and its paired differences from its reference cell (when there is one)."""
    cell.verdict_share = {kind: iv.wilson(n, cell.judged) for kind, n in sorted(cell.verdicts.items())}
    cell.time, cell.fixed_early, cell.doses = time_in_states(cell.runs), fixed_early(cell.runs), cell_doses(cell.runs)
    for m in [*MEASURES, Measure(FIRST_EVENT, "first event step", "last", False)]:
        mine, left_out = cell.samples(m.key, m.log)
        if left_out:
            cell.left_out[m.key] = left_out
        if m.log:
            cell.summary[m.key] = iv.geometric(iv.t_interval(mine))
        elif m.bounded:
            cell.summary[m.key] = iv.logit_interval(mine)
        else:
            cell.summary[m.key] = iv.t_interval(mine)
        if reference is not None:
            cell.vs_reference[m.key] = difference(cell.runs, reference.runs, _measure_value(m.key), m.log,
                                                  1.0 if m.bounded else None)
    if reference is None:
        return
    cell.reference = reference.arm
    cell.pairing = pair(cell.runs, reference.runs, reference.arm)
    cell.verdict_pairs = verdict_pairs(cell.runs, reference.runs)
    accuracy = cell.vs_reference[ACCURACY]
    if accuracy.method == "paired":
        cell.equivalence[ACCURACY] = tost(accuracy.diffs, ACCURACY_MARGIN)
    if cell.verdict_pairs is not None and cell.verdict_pairs.n:
        vp = cell.verdict_pairs
        cell.equivalence[VERDICT] = tost_verdicts(vp.both, vp.only_arm, vp.only_reference, vp.neither)


def build_cells(runs: list[StudyRun]) -> list[Cell]:
    """The study's cells in condition order (sorted by name) and arm order (none first, rescues' arms last)."""
    cells: dict[tuple[str, str], Cell] = {}
    for r in latest_per_seed(runs):
        cell = cells.setdefault((r.condition, r.arm), Cell(r.condition, r.arm))
        cell.runs.append(r)
        if r.verdict:
            cell.verdicts[r.verdict] += 1
    for cell in cells.values():
        cell.runs.sort(key=lambda r: (len(r.seed), r.seed))
    for cell in cells.values():
        ref = reference_arm(cell.arm)
        summarize(cell, None if ref is None else cells.get((cell.condition, ref)))
    return sorted(cells.values(), key=lambda c: (c.condition, arm_order(c.arm)))
