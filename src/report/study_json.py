"""`study.json`: every number the study's prose needs, and the small API the prose generator calls.

    data = json.loads(Path("docs/seed_study2/study.json").read_text())
    nums = study_numbers(data)            # {"lenet5_dying/l2_1e-3/acc_diff": "+0.012 [-0.01, +0.03]", ...}
    f"L2 changed accuracy by {nums['lenet5_dying/l2_1e-3/acc_diff']}"
    missing = numbers_in_prose(markdown, data)   # prose numbers not in the data (prose_numbers.py)

Per cell (`cells[]`): n, seeds, run ids, verdict counts and Wilson shares, the pairing (matched seeds and
the ones missing on either side), the paired verdict table and its interval, each measure's summary and
what was left out (with reasons), each measure's paired difference (method, interval, per-seed
differences, identical or not; log measures also as a factor), TOST results, time in states, end states,
recoveries, whether the verdict was fixed before step 30, the L2 dose of every run; and `text`: the
cell's numbers exactly as the tables print them. Top level: the pooled rescue/harm rates, the count of
cells fixed before step 30, the margins and the smallest detectable flip.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from src.report import intervals as iv
from src.report import study_format as fmt
from src.report.doses import dose_text
from src.report.equivalence import ACCURACY_MARGIN, TOST_LEVEL, VERDICT_MARGIN, smallest_detectable_flip
from src.report.pooled import Pooled, left_out_text, rate_text
from src.report.states import FIXED_BEFORE
from src.report.study import ACCURACY, FIRST_EVENT, MEASURES, VERDICT, Cell
from src.report.study_arms import arm_family, is_regularizer

SHORT = {"test/acc": "acc", "train/loss": "max_loss", "grad/global_norm": "max_grad_norm",
         "grad/first_last_ratio": "min_grad_ratio", "signal/first_last_ratio": "min_signal_ratio",
         "dead/max": "max_dead", "sharpness/stability": "max_stability", FIRST_EVENT: "first_event_step"}
LOG = {m.key for m in MEASURES if m.log}
BOUNDED = {m.key for m in MEASURES if m.bounded}


def _plain(i: iv.Interval | None) -> dict[str, Any] | None:
    return None if i is None else asdict(i)


def cell_text(c: Cell) -> dict[str, str]:
    """The cell's numbers as the tables print them, by short name (`acc`, `acc_diff`, `acc_tost`, ...)."""
    text = {"n": str(len(c.runs)), "verdicts": fmt.verdict_counts(c.verdicts, c.verdict_share),
            "time": c.time.text() if c.time else fmt.MISSING, "decay": dose_text(c.doses)}
    for key, short in SHORT.items():
        text[short] = fmt.summary(c.summary.get(key), c.left_out.get(key), key in BOUNDED)
        if key in c.vs_reference:
            text[f"{short}_diff"] = fmt.difference(c.vs_reference[key], key in LOG)
    text["first_event_step"] = fmt.steps(c.samples(FIRST_EVENT)[0])
    if c.pairing is not None:
        text["pairing"] = c.pairing.note(c.arm)
        text["verdict_diff"] = fmt.verdict_difference(c.verdict_pairs)
    for key, name in ((ACCURACY, "acc_tost"), (VERDICT, "verdict_tost")):
        if key in c.equivalence:
            text[name] = c.equivalence[key].text()
    return text


def cell_record(c: Cell) -> dict[str, Any]:
    diffs = {}
    for key, d in c.vs_reference.items():
        diffs[key] = {"method": d.method, "interval": _plain(d.interval), "diffs": d.diffs, "identical": d.identical,
                      "left_out": d.left_out}
        if key in LOG and d.interval is not None:
            diffs[key]["factor"] = _plain(iv.geometric(d.interval))
    return {
        "condition": c.condition, "arm": c.arm, "reference": c.reference, "regularizer": is_regularizer(c.arm),
        "dose": arm_family(c.arm)[1],
        "n": len(c.runs), "run_ids": [r.run_id for r in c.runs], "seeds": [r.seed for r in c.runs],
        "verdicts": dict(c.verdicts), "verdict_share": {k: _plain(v) for k, v in c.verdict_share.items()},
        "pairing": None if c.pairing is None else asdict(c.pairing),
        "verdict_pairs": None if c.verdict_pairs is None else {**asdict(c.verdict_pairs), "n": c.verdict_pairs.n},
        "summary": {k: _plain(v) for k, v in c.summary.items()}, "left_out": c.left_out, "vs_reference": diffs,
        "equivalence": {k: {**asdict(e), "text": e.text()} for k, e in c.equivalence.items()},
        "time_in_states": None if c.time is None else asdict(c.time), f"fixed_before_{FIXED_BEFORE}": c.fixed_early,
        "doses": [d.record() for d in c.doses],
        "values": {r.seed: {**r.values, FIRST_EVENT: r.first_event_step, "verdict": r.verdict, "steps": r.steps,
                            "final_state": r.final_state, "recovered": r.recovered, "states": r.states,
                            "params": r.params}
                   for r in c.runs},
        "text": cell_text(c),
    }


def failing_conditions(cells: list[Cell]) -> list[str]:
    """Conditions whose `none` cell has a seed that ended with an event verdict (not healthy, not inconclusive)."""
    return sorted({c.condition for c in cells if c.arm == "none"
                   and any(k not in ("healthy", "inconclusive") for k in c.verdicts)})


def fixed_record(cells: list[Cell]) -> dict[str, Any]:
    """How many cells had their verdict fixed before step 30: all cells, and the regularizer cells of the
    failing conditions (the first edition's 67 of 82)."""
    failing = set(failing_conditions(cells))
    judged = [c for c in cells if c.fixed_early is not None]
    regs = [c for c in judged if is_regularizer(c.arm) and c.condition in failing]
    return {"before_step": FIXED_BEFORE, "cells": sum(c.fixed_early for c in judged), "of": len(judged),
            "regularizer_cells_of_failing_conditions": sum(c.fixed_early for c in regs), "of_regularizer": len(regs),
            "failing_conditions": sorted(failing),
            "which": [f"{c.condition}/{c.arm}" for c in judged if c.fixed_early]}


def pooled_record(p: Pooled) -> dict[str, Any]:
    return {"rescued": p.rescued, "failed_reference": p.failed_reference, "rescue_rate": _plain(p.rescue_rate),
            "harmed": p.harmed, "healthy_reference": p.healthy_reference, "harm_rate": _plain(p.harm_rate),
            "conditions": sorted(p.conditions), "left_out": dict(p.left_out),
            "text": {"rescues": rate_text(p.rescued, p.failed_reference, p.rescue_rate),
                     "harms": rate_text(p.harmed, p.healthy_reference, p.harm_rate),
                     "left_out": left_out_text(dict(p.left_out)).removeprefix("; ") or "nothing left out"}}


def study_record(experiment: str, cells: list[Cell], pooled: dict[str, Pooled], read: int) -> dict[str, Any]:
    seeds = max((c.pairing.matched.__len__() for c in cells if c.pairing), default=0)
    flip = smallest_detectable_flip(seeds) if seeds else None
    timed = [r.seconds for c in cells for r in c.runs if r.seconds is not None]
    wall = {"runs": len(timed), "seconds": round(sum(timed), 1), "per_run": round(sum(timed) / len(timed), 1)} \
        if timed else None
    return {"experiment": experiment, "runs_read": read, "runs_kept": sum(len(c.runs) for c in cells),
            "runs_wall_time": wall,
            "conventions": {"level": iv.LEVEL, "tost_level": TOST_LEVEL, "accuracy_margin": ACCURACY_MARGIN,
                            "verdict_margin": VERDICT_MARGIN, "fixed_before_step": FIXED_BEFORE,
                            "matched_seeds_max": seeds, "smallest_detectable_flip": flip},
            "pooled": {g: pooled_record(p) for g, p in pooled.items()}, "fixed_early": fixed_record(cells),
            "cells": [cell_record(c) for c in cells]}


def study_numbers(study_json: dict[str, Any]) -> dict[str, str]:
    """Named, formatted numbers for the prose: `<condition>/<arm>/<name>` for every cell's `text` entry
    (acc, acc_diff, acc_tost, verdicts, verdict_diff, verdict_tost, time, decay, pairing, max_loss, ...),
    `pooled/<regularizer|remedy>/<rescues|harms|left_out>`, `fixed_early/all`, `fixed_early/regularizer_failing`,
    `margin/accuracy`, `margin/verdict`, `smallest_detectable_flip`."""
    out: dict[str, str] = {}
    for cell in study_json["cells"]:
        for name, text in cell["text"].items():
            out[f"{cell['condition']}/{cell['arm']}/{name}"] = text
    for group, rec in study_json["pooled"].items():  # rate texts with what was left out
        for name, text in rec["text"].items():
            out[f"pooled/{group}/{name}"] = text
    fixed, conv = study_json["fixed_early"], study_json["conventions"]
    out["fixed_early/all"] = f"{fixed['cells']} of {fixed['of']} cells"
    out["fixed_early/regularizer_failing"] = (f"{fixed['regularizer_cells_of_failing_conditions']} of "
                                              f"{fixed['of_regularizer']} regularizer cells")
    out["margin/accuracy"] = f"±{conv['accuracy_margin']:g}"
    out["margin/verdict"] = f"±{conv['verdict_margin']:g}"
    flip, seeds = conv["smallest_detectable_flip"], conv["matched_seeds_max"]
    out["smallest_detectable_flip"] = "none" if flip is None else f"{flip} of {seeds}"
    return out
