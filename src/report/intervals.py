"""95% intervals over seeds, and differences from a reference arm, for the study report.

Which interval, and why:

- a mean over seeds (test accuracy, steps to the first event, a run's max dead fraction, ...):
  Student's t-interval, mean ± t_{0.975, n−1} · s/√n. With 3 seeds a bootstrap over seeds has only
  10 distinct resamples and its percentile interval is too narrow; the t-interval is the honest one
  (wide: t_{0.975, 2} = 4.30);
- a mean of accuracies over seeds in the sweep report: the t-interval of their logits given back
  (`logit_interval`), so that it stays inside [0, 1];
- a difference of two means (an arm minus `none` on the same condition): Welch's t-interval, the two
  variances not pooled, degrees of freedom by Welch–Satterthwaite;
- a fraction of seeds (how many runs got a verdict): Wilson's score interval, which stays inside
  [0, 1] and is not zero-width at 0/3 or 3/3 the way a t-interval on 0/1 values would be;
- a difference of two fractions: Newcombe's hybrid score interval (his method 10), built from the two
  Wilson intervals.

Quantities spread over decades (a gradient ratio, λ_max·η/2) are summarized on log10: the interval of
the mean log10 is taken and given back as a geometric mean with its interval; the difference from `none`
is then a difference of log10 (a factor of 10^d). A log has no value at 0 or below: zeros, negatives and
non-finite values are left out and counted (`split_log10`), never floored; the report says how many and
why. Missing values (a run that did not log the metric) are left out; fewer than 2 values give no interval.

Paired data (the same seed in two arms: same init, same data order) are in `paired.py`; equivalence
(TOST) in `equivalence.py`.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from scipy import stats

LEVEL = 0.95
Z = float(stats.norm.ppf(0.5 + LEVEL / 2))  # 1.96


@dataclass(frozen=True)
class Interval:
    """An estimate with its 95% interval; `lo`/`hi` None when it cannot be computed (n < 2); `n` values."""

    estimate: float
    lo: float | None
    hi: float | None
    n: int


def t_quantile(n: int, level: float = LEVEL) -> float:
    """Two-sided Student's t quantile for a mean of n values (n − 1 degrees of freedom)."""
    return float(stats.t.ppf(0.5 + level / 2, n - 1))


def t_interval(values: list[float], level: float = LEVEL) -> Interval | None:
    """Mean and Student's t-interval of the values; None without values."""
    n = len(values)
    if n == 0:
        return None
    mean = statistics.fmean(values)
    if n < 2:
        return Interval(mean, None, None, n)
    half = t_quantile(n, level) * statistics.stdev(values) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


LOGIT_EDGE = 1e-6  # an accuracy of exactly 0 or 1 enters the logit as 1e-6 or 1 − 1e-6 (the report says so)


def logit_interval(values: list[float]) -> Interval | None:
    """Mean of fractions in [0, 1] with the t-interval of their logits given back (inside [0, 1]);
    0 and 1 count as `LOGIT_EDGE` and 1 − `LOGIT_EDGE` on the logit scale."""
    if not values:
        return None
    if len(values) > 1 and min(values) == max(values):  # no spread: the value itself, exactly (no edge clamp)
        return Interval(values[0], values[0], values[0], len(values))
    logits = [math.log(p / (1 - p)) for p in (min(max(v, LOGIT_EDGE), 1 - LOGIT_EDGE) for v in values)]
    interval = t_interval(logits)
    back = [None if x is None else 1 / (1 + math.exp(-x)) for x in (interval.lo, interval.hi)]
    return Interval(statistics.fmean(values), back[0], back[1], len(values))


def welch_difference(a: list[float], b: list[float]) -> Interval | None:
    """mean(a) − mean(b) with Welch's t-interval; None when either side is empty."""
    if not a or not b:
        return None
    diff = statistics.fmean(a) - statistics.fmean(b)
    if len(a) < 2 or len(b) < 2:
        return Interval(diff, None, None, len(a) + len(b))
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:  # every seed gave the same value on both sides: the difference is exact
        return Interval(diff, diff, diff, len(a) + len(b))
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = float(stats.t.ppf(0.5 + LEVEL / 2, df)) * se
    return Interval(diff, diff - half, diff + half, len(a) + len(b))


def wilson(k: int, n: int, z: float = Z) -> Interval | None:
    """Fraction k/n with Wilson's score interval (z: 1.96 for 95%); None when n = 0."""
    if n == 0:
        return None
    p = k / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half), n)


def newcombe_difference(k1: int, n1: int, k2: int, n2: int) -> Interval | None:
    """k1/n1 − k2/n2 with Newcombe's hybrid score interval (method 10); None when a side is empty."""
    w1, w2 = wilson(k1, n1), wilson(k2, n2)
    if w1 is None or w2 is None:
        return None
    p1, p2 = w1.estimate, w2.estimate
    lo = p1 - p2 - math.sqrt((p1 - w1.lo) ** 2 + (w2.hi - p2) ** 2)
    hi = p1 - p2 + math.sqrt((w1.hi - p1) ** 2 + (p2 - w2.lo) ** 2)
    return Interval(p1 - p2, lo, hi, n1 + n2)


def newcombe_paired(both: int, only_first: int, only_second: int, neither: int, z: float = Z) -> Interval | None:
    """p1 − p2 for paired yes/no outcomes (the same seed in two arms) with Newcombe's score interval for
    paired data (1998, method 10): the two Wilson intervals, corrected by the pairs' correlation φ.
    both: yes in both; only_first / only_second: yes on one side only; neither: no in both."""
    n = both + only_first + only_second + neither
    if n == 0:
        return None
    w1, w2 = wilson(both + only_first, n, z), wilson(both + only_second, n, z)
    p1, p2 = w1.estimate, w2.estimate
    margins = (both + only_first) * (only_second + neither) * (both + only_second) * (only_first + neither)
    phi = (both * neither - only_first * only_second) / math.sqrt(margins) if margins else 0.0
    d1, u1, d2, u2 = p1 - w1.lo, w1.hi - p1, p2 - w2.lo, w2.hi - p2
    lo = p1 - p2 - math.sqrt(max(0.0, d1**2 - 2 * phi * d1 * u2 + u2**2))
    hi = p1 - p2 + math.sqrt(max(0.0, u1**2 - 2 * phi * u1 * d2 + d2**2))
    return Interval(p1 - p2, max(-1.0, lo), min(1.0, hi), n)


def split_log10(values: list[float]) -> tuple[list[float], dict[str, int]]:
    """log10 of the finite positive values, and how many were left out and why: `zero`, `negative`,
    `non-finite` (NaN or ±Inf). A log has no value there; no floor is put in their place."""
    logs: list[float] = []
    left_out = {"zero": 0, "negative": 0, "non-finite": 0}
    for v in values:
        if not math.isfinite(v):
            left_out["non-finite"] += 1
        elif v == 0:
            left_out["zero"] += 1
        elif v < 0:
            left_out["negative"] += 1
        else:
            logs.append(math.log10(v))
    return logs, {k: n for k, n in left_out.items() if n}


def log10_values(values: list[float]) -> list[float]:
    """log10 of the finite positive values (zeros, negatives and non-finite ones left out: `split_log10`
    counts them)."""
    return split_log10(values)[0]


def geometric(interval: Interval | None) -> Interval | None:
    """An interval of mean log10 given back on the original scale (geometric mean and its interval)."""
    if interval is None:
        return None
    back = [None if x is None else 10**x for x in (interval.lo, interval.hi)]
    return Interval(10**interval.estimate, back[0], back[1], interval.n)
