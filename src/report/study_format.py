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


def fraction(x: float | None) -> str:
    """A quantity in [0, 1] with 3 decimals (its interval's ends too: `0.000`, not a logit's 1e-30)."""
    return MISSING if x is None else f"{x:.3f}"


def interval(i: iv.Interval | None, bounded: bool = False) -> str:
    """`0.52 [0.41, 0.63]`; `0.52 (n=1)` without an interval; `0.100 in every seed (n=3)` when all seeds
    agree; "—" without values. `bounded`: a quantity in [0, 1], written with 3 decimals."""
    if i is None:
        return MISSING
    write = fraction if bounded else num
    if i.lo is None or i.hi is None:
        return f"{write(i.estimate)} (n={i.n})"
    if i.lo == i.hi and i.n > 1:  # zero spread: every seed gave this value
        return f"{write(i.estimate)} in every seed (n={i.n})"
    return f"{write(i.estimate)} [{write(i.lo)}, {write(i.hi)}]"


def reasons(left_out: dict[str, int]) -> str:
    """`1 zero, 2 negative`."""
    return ", ".join(f"{n} {why}" for why, n in left_out.items())


def summary(i: iv.Interval | None, left_out: dict[str, int] | None = None, bounded: bool = False) -> str:
    """A cell's summary with what was left out: `1.2e-05 (n=1; left out: 2 zero: no log)`; all zero: said so."""
    left_out = left_out or {}
    if i is None and left_out:
        only = next(iter(left_out)) if len(left_out) == 1 else None
        total = sum(left_out.values())
        return f"all {total} values {'0' if only == 'zero' else only} (no log)" if only else \
            f"none usable ({reasons(left_out)})"
    text = interval(i, bounded)
    if left_out and i is not None:
        n = "" if i.lo is None else f"n={i.n}; "
        text += f" ({n}left out: {reasons(left_out)}{': no log' if 'non-finite' not in left_out else ''})"
    return text


def signed(x: float) -> str:
    return f"{x:+.3g}"


def difference(d: Difference | None, log: bool = False) -> str:
    """Arm − reference: `+0.12 [+0.05, +0.19]`, for log measures a factor `×3.2 [1.1, 9.4]`; `identical in every
    seed (n=3)` when every paired difference is exactly 0; Welch's fallback labelled; pairs left out named."""
    if d is None:
        return MISSING
    if d.identical:
        text = f"identical in every seed (n={len(d.diffs)})" if len(d.diffs) > 1 else "identical in its one pair (n=1)"
    elif d.interval is None:
        text = MISSING
    elif log:
        factor = iv.geometric(d.interval)
        spread = " (n=1)" if factor.lo is None else f" [{num(factor.lo)}, {num(factor.hi)}]"
        text = f"×{num(factor.estimate)}{spread}"
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
    """Fraction failed, arm − reference, paired: `−1 [−1, −0.21] (3 rescued, 0 harmed of 3)`; pairs with an
    `inconclusive` side named."""
    if pairs is None:
        return MISSING
    skipped = f"; {pairs.inconclusive} pair{'s' if pairs.inconclusive > 1 else ''} left out: inconclusive" \
        if pairs.inconclusive else ""
    if pairs.interval is None:
        return f"no pair judged ({pairs.inconclusive} left out: inconclusive)"
    i = pairs.interval
    if pairs.only_arm == pairs.only_reference == 0:
        return f"same outcome in every seed (n={pairs.n}{skipped}) [{signed(i.lo)}, {signed(i.hi)}]"
    return (f"{signed(i.estimate)} [{signed(i.lo)}, {signed(i.hi)}] ({pairs.only_reference} rescued, "
            f"{pairs.only_arm} harmed of {pairs.n}{skipped})")


def steps(values: list[float]) -> str:
    """First event steps over the seeds that had one: `16 (range 11–21; n=2)` (a t-interval of steps could
    go below 0: the range is given instead)."""
    if not values:
        return MISSING
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.0f} (n=1)"
    if min(values) == max(values):
        return f"{mean:.0f} in every seed (n={len(values)})"
    return f"{mean:.0f} (range {min(values):.0f}–{max(values):.0f}; n={len(values)})"
