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
is then a difference of log10 (a factor of 10^d); an exact zero counts as 1e-30. Missing values (a run
that did not log the metric) are left out; fewer than 2 values give no interval (None).
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


def t_interval(values: list[float]) -> Interval | None:
    """Mean and Student's t-interval of the values; None without values."""
    n = len(values)
    if n == 0:
        return None
    mean = statistics.fmean(values)
    if n < 2:
        return Interval(mean, None, None, n)
    half = float(stats.t.ppf(0.5 + LEVEL / 2, n - 1)) * statistics.stdev(values) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def logit_interval(values: list[float]) -> Interval | None:
    """Mean of fractions in [0, 1] with the t-interval of their logits given back (inside [0, 1]);
    0 and 1 count as 1e-6 and 1 − 1e-6 on the logit scale."""
    if not values:
        return None
    logits = [math.log(p / (1 - p)) for p in (min(max(v, 1e-6), 1 - 1e-6) for v in values)]
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


def wilson(k: int, n: int) -> Interval | None:
    """Fraction k/n with Wilson's score interval; None when n = 0."""
    if n == 0:
        return None
    p = k / n
    centre = (p + Z**2 / (2 * n)) / (1 + Z**2 / n)
    half = Z / (1 + Z**2 / n) * math.sqrt(p * (1 - p) / n + Z**2 / (4 * n**2))
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


LOG_FLOOR = 1e-30  # a ratio of exactly 0 (a layer with no gradient at all) is counted as this on log10


def log10_values(values: list[float]) -> list[float]:
    """log10 of the finite non-negative values, zeros counted as `LOG_FLOOR`; NaN, Inf, negatives left out."""
    return [math.log10(max(v, LOG_FLOOR)) for v in values if v >= 0 and math.isfinite(v)]


def geometric(interval: Interval | None) -> Interval | None:
    """An interval of mean log10 given back on the original scale (geometric mean and its interval)."""
    if interval is None:
        return None
    back = [None if x is None else 10**x for x in (interval.lo, interval.hi)]
    return Interval(10**interval.estimate, back[0], back[1], interval.n)
