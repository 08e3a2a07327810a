"""How the study's numbers are written, in one place: the tables of `study.md` and the named numbers the
prose generator reads (`study_json.study_numbers`) use the same functions, so the prose and the tables
print a number the same way."""

from __future__ import annotations

from src.report import intervals as iv
from src.report.paired import Difference

MISSING = "—"


def num(x: float | None) -> str:
    """3 significant digits; "—" when missing."""
    return MISSING if x is None else f"{x:.3g}"


def interval(i: iv.Interval | None) -> str:
    """`0.52 [0.41, 0.63]`; `0.52 (n=1)` without an interval; "—" without values."""
    if i is None:
        return MISSING
    if i.lo is None or i.hi is None:
        return f"{num(i.estimate)} (n={i.n})"
    return f"{num(i.estimate)} [{num(i.lo)}, {num(i.hi)}]"


def reasons(left_out: dict[str, int]) -> str:
    """`1 zero, 2 negative`."""
    return ", ".join(f"{n} {why}" for why, n in left_out.items())


def summary(i: iv.Interval | None, left_out: dict[str, int] | None = None) -> str:
    """A cell's summary with what was left out: `1.2e-05 (n=1; left out: 2 zero: no log)`; all zero: said so."""
    left_out = left_out or {}
    if i is None and left_out:
        only = next(iter(left_out)) if len(left_out) == 1 else None
        total = sum(left_out.values())
        return f"all {total} values {'0' if only == 'zero' else only} (no log)" if only else \
            f"none usable ({reasons(left_out)})"
    text = interval(i)
    if left_out and i is not None:
        text += f" (n={i.n}; left out: {reasons(left_out)}{': no log' if 'non-finite' not in left_out else ''})"
    return text


def signed(x: float) -> str:
    return f"{x:+.3g}"


def difference(d: Difference | None, log: bool = False) -> str:
    """Arm − reference: `+0.12 [+0.05, +0.19]`, for log measures a factor `×3.2 [1.1, 9.4]`; `identical in every
    seed (n=3)` when every paired difference is exactly 0; Welch's fallback labelled; pairs left out named."""
    if d is None:
        return MISSING
    if d.identical:
        text = f"identical in every seed (n={len(d.diffs)})"
    elif d.interval is None:
        text = MISSING
    elif log:
        factor = iv.geometric(d.interval)
        text = f"×{num(factor.estimate)}" + ("" if factor.lo is None else f" [{num(factor.lo)}, {num(factor.hi)}]")
    elif d.interval.lo is None:
        text = f"{signed(d.interval.estimate)} (n=1)"
    else:
        text = f"{signed(d.interval.estimate)} [{signed(d.interval.lo)}, {signed(d.interval.hi)}]"
    if d.method != "paired":
        text = f"{d.method}: {text}"
    if d.left_out:
        text += f" (pairs left out: {reasons(d.left_out)})"
    return text


def verdict_counts(verdicts: dict[str, int], share: dict[str, iv.Interval]) -> str:
    """`stalled 3/3 [0.44, 1]` for each verdict kind seen."""
    judged = sum(verdicts.values())
    ordered = sorted(verdicts.items(), key=lambda kv: -kv[1])
    return "; ".join(f"{kind} {n}/{judged} [{share[kind].lo:.2f}, {share[kind].hi:.2f}]"
                     for kind, n in ordered) or MISSING


def verdict_difference(pairs) -> str:  # noqa: ANN001 (paired.VerdictPairs | None)
    """Fraction not healthy, arm − reference, paired: `−1 [−1, −0.21] (3 rescued, 0 harmed of 3)`."""
    if pairs is None or pairs.interval is None:
        return MISSING
    i = pairs.interval
    if pairs.only_arm == pairs.only_reference == 0:
        return f"same verdict class in every seed (n={pairs.n}) [{signed(i.lo)}, {signed(i.hi)}]"
    return (f"{signed(i.estimate)} [{signed(i.lo)}, {signed(i.hi)}] ({pairs.only_reference} rescued, "
            f"{pairs.only_arm} harmed of {pairs.n})")
