"""Equivalence: when may the report say an arm did nothing? Two one-sided tests (TOST, Schuirmann 1987).

An interval that contains 0 says "not shown to differ", not "no effect": with 3 seeds it contains 0 for
almost anything. "Equivalent within ±m" needs a margin m fixed in advance and the 90% interval of the
paired difference inside (−m, m) (both one-sided tests at 5%). The outcomes:

- `equivalent`: the 90% interval lies inside ±m (and if the 95% interval also excludes 0, the difference
  is real but smaller than the margin: said so);
- `different`: the 95% interval excludes 0 and does not lie inside ±m;
- `inconclusive`: neither (n too small for the spread seen).

Margins (set before the second edition ran, not tuned on its results):

- final test accuracy: ±0.02 absolute (`ACCURACY_MARGIN`). A failed run sits at chance (0.10) and a
  trained one at 0.85-0.99, so the effects the study asks about are ≥ 0.5; one run's test accuracy on
  ~1,000 test images has a binomial s.d. of ≈ 0.01 at 0.9, so 0.02 is two of those: below it two arms
  cannot be told apart by their test sets anyway.
- fraction of seeds failed (an event verdict): ±0.25 (`VERDICT_MARGIN`), one seed in four. With paired yes/no outcomes
  even a perfect agreement needs `seeds_for_equivalence()` = 9 seeds to show it; with 3 seeds the verdict
  is at best `inconclusive`, and `smallest_detectable_flip(3)` = 3 (only 3/3 → 0/3 excludes 0).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from scipy import stats

from src.report import intervals as iv

ACCURACY_MARGIN = 0.02
VERDICT_MARGIN = 0.25
TOST_LEVEL = 0.90  # the interval whose inclusion in ±m is the two one-sided tests at 5% each
Z90 = float(stats.norm.ppf(0.5 + TOST_LEVEL / 2))  # 1.645


@dataclass(frozen=True)
class Equivalence:
    result: str  # "equivalent" | "different" | "inconclusive"
    margin: float
    n: int
    ci90: iv.Interval | None
    ci95: iv.Interval | None
    p_tost: float | None  # the larger of the two one-sided p-values (< 0.05: equivalent)
    reason: str  # one line for the report

    def text(self) -> str:
        return {"equivalent": f"equivalent within ±{self.margin:g}", "different": "different"}.get(
            self.result, "inconclusive") + f" ({self.reason})"


def _judge(ci90: iv.Interval | None, ci95: iv.Interval | None, margin: float, n: int, p: float | None,
           short: str) -> Equivalence:
    if ci90 is None or ci90.lo is None or ci95 is None or ci95.lo is None:
        return Equivalence("inconclusive", margin, n, ci90, ci95, p, f"n too small: n={n}, no interval")
    inside = -margin < ci90.lo and ci90.hi < margin
    excludes0 = ci95.lo > 0 or ci95.hi < 0
    span = f"90% [{ci90.lo:+.3g}, {ci90.hi:+.3g}]"
    if inside:
        extra = "; 95% excludes 0: real but smaller than the margin" if excludes0 else ""
        return Equivalence("equivalent", margin, n, ci90, ci95, p, f"{span} inside ±{margin:g}, n={n}{extra}")
    if excludes0:
        return Equivalence("different", margin, n, ci90, ci95, p,
                           f"95% [{ci95.lo:+.3g}, {ci95.hi:+.3g}] excludes 0, n={n}")
    return Equivalence("inconclusive", margin, n, ci90, ci95, p, f"n too small: {span} crosses ±{margin:g}{short}")


def tost(diffs: list[float], margin: float = ACCURACY_MARGIN) -> Equivalence:
    """TOST on paired differences (arm − reference per seed) against ±margin."""
    n = len(diffs)
    ci90, ci95 = iv.t_interval(diffs, TOST_LEVEL), iv.t_interval(diffs)
    p = None
    if n >= 2:
        mean, se = statistics.fmean(diffs), statistics.stdev(diffs) / math.sqrt(n)
        if se == 0:
            p = 0.0 if abs(mean) < margin else 1.0
        else:
            p = float(max(stats.t.sf((mean + margin) / se, n - 1), stats.t.sf((margin - mean) / se, n - 1)))
    return _judge(ci90, ci95, margin, n, p, "")


def tost_verdicts(both: int, only_arm: int, only_reference: int, neither: int,
                  margin: float = VERDICT_MARGIN) -> Equivalence:
    """TOST-style equivalence of the fraction of seeds failed (paired), with Newcombe's paired interval."""
    counts = (both, only_arm, only_reference, neither)
    n = sum(counts)
    ci90, ci95 = iv.newcombe_paired(*counts, z=Z90), iv.newcombe_paired(*counts)
    need = seeds_for_equivalence(margin)
    return _judge(ci90, ci95, margin, n, None, f"; all seeds agreeing shows it from n={need}" if n < need else "")


def smallest_detectable_flip(n: int) -> int | None:
    """The fewest seeds, of n paired, that must flip the same way (the others agreeing) for the 95% paired
    interval of the verdict fraction to exclude 0; None when even n of n cannot."""
    for k in range(1, n + 1):
        interval = iv.newcombe_paired(0, k, 0, n - k)
        if interval is not None and interval.lo > 0:
            return k
    return None


def seeds_for_equivalence(margin: float = VERDICT_MARGIN, limit: int = 1000) -> int:
    """The fewest paired seeds, all agreeing, whose 90% paired interval lies inside ±margin."""
    for n in range(1, limit + 1):
        interval = iv.newcombe_paired(n, 0, 0, 0, z=Z90)
        if -margin < interval.lo and interval.hi < margin:
            return n
    return limit
