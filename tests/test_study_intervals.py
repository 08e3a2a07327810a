"""The study report's intervals against hand computations, and its differences from `none`.

Quantiles from a printed t table: t_{0.975, 2} = 4.3027, t_{0.975, 4} = 2.7764; z_{0.975} = 1.95996.
"""

from __future__ import annotations

import math

import pytest

from src.report import intervals as iv
from src.report.study import FIRST_EVENT, Cell, StudyRun, build_cells

T2, T4, Z = 4.302653, 2.776445, 1.959964


def test_t_interval_of_three_seeds_by_hand() -> None:
    i = iv.t_interval([0.1, 0.2, 0.3])  # mean 0.2, sample sd 0.1
    half = T2 * 0.1 / math.sqrt(3)  # 0.24841
    assert (i.estimate, i.n) == (pytest.approx(0.2), 3)
    assert i.lo == pytest.approx(0.2 - half, abs=1e-6) and i.hi == pytest.approx(0.2 + half, abs=1e-6)


def test_t_interval_edges() -> None:
    assert iv.t_interval([]) is None
    one = iv.t_interval([0.5])
    assert (one.estimate, one.lo, one.hi) == (0.5, None, None)
    same = iv.t_interval([0.1, 0.1, 0.1])
    assert same.lo == pytest.approx(0.1) and same.hi == pytest.approx(0.1)


def test_welch_difference_by_hand() -> None:
    # equal variances (1) and sizes (3): Welch's df is 2(n − 1) = 4, se = sqrt(1/3 + 1/3)
    d = iv.welch_difference([1.0, 2.0, 3.0], [3.0, 4.0, 5.0])
    half = T4 * math.sqrt(2 / 3)  # 2.26697
    assert d.estimate == pytest.approx(-2.0)
    assert d.lo == pytest.approx(-2.0 - half, abs=1e-5) and d.hi == pytest.approx(-2.0 + half, abs=1e-5)
    # unequal variances: df = (va + vb)^2 / (va^2/2 + vb^2/2) with va = 1/3, vb = 4/3 -> 50/17
    d = iv.welch_difference([2.0, 4.0, 6.0], [1.0, 2.0, 3.0])
    from scipy import stats

    half = stats.t.ppf(0.975, 50 / 17) * math.sqrt(5 / 3)
    assert d.lo == pytest.approx(2.0 - half) and d.hi == pytest.approx(2.0 + half)
    assert iv.welch_difference([0.1, 0.1], [0.1, 0.1]) == iv.Interval(0.0, 0.0, 0.0, 4)


def test_wilson_and_newcombe_by_hand() -> None:
    z2 = Z**2
    centre = (1 + z2 / 6) / (1 + z2 / 3)
    half = Z / (1 + z2 / 3) * math.sqrt(z2 / 36)
    w = iv.wilson(3, 3)
    assert w.estimate == 1.0 and w.lo == pytest.approx(centre - half, abs=1e-6) and w.hi == 1.0
    assert w.lo == pytest.approx(0.4385, abs=1e-4)  # the textbook value for 3/3
    zero = iv.wilson(0, 3)
    assert zero.lo == 0.0 and zero.hi == pytest.approx(1 - 0.4385, abs=1e-4)
    # Newcombe (method 10), 3/3 − 0/3: lower = 1 − sqrt((1 − l1)^2 + (u2 − 0)^2), upper = 1
    d = iv.newcombe_difference(3, 3, 0, 3)
    assert d.estimate == 1.0 and d.hi == pytest.approx(1.0)
    assert d.lo == pytest.approx(1 - math.sqrt(2 * (1 - w.lo) ** 2), abs=1e-6)
    assert iv.wilson(0, 0) is None


def test_log_scale_summary_is_a_geometric_mean() -> None:
    i = iv.geometric(iv.t_interval(iv.log10_values([1e-2, 1e-4, 1e-6])))
    assert i.estimate == pytest.approx(1e-4)
    half = T2 * 2.0 / math.sqrt(3)  # sd of (−2, −4, −6) is 2
    assert i.lo == pytest.approx(10 ** (-4 - half)) and i.hi == pytest.approx(10 ** (-4 + half))
    assert iv.log10_values([0.0, -1.0, math.nan, math.inf]) == []  # no log there, and no floor (counted apart)


def run(arm: str, seed: int, acc: float, verdict: str, step: int | None = None, ratio: float | None = None) -> StudyRun:
    values = {"test/acc": acc, "grad/first_last_ratio": ratio, "signal/first_last_ratio": None}
    return StudyRun(f"{arm}{seed}", "lenet5_dying", arm, str(seed), seed, verdict, step, values)


def test_cells_match_the_hand_computation_and_differ_from_none() -> None:
    runs = [run("none", 0, 0.1, "stalled", 90, 1e-6), run("none", 1, 0.1, "stalled", 110, 1e-4),
            run("none", 2, 0.1, "stalled", 100, 1e-5),
            run("lr_small", 0, 0.8, "healthy", ratio=1e-1), run("lr_small", 1, 0.9, "healthy", ratio=1e-1),
            run("lr_small", 2, 0.85, "healthy", ratio=1e-1),
            run("lr_small", 2, 0.0, "nonfinite")]  # an older repeat of seed 2: superseded by the later one
    runs[-1].start_time = -1
    none, small = build_cells(runs)
    assert isinstance(none, Cell) and (none.arm, small.arm) == ("none", "lr_small") and len(small.runs) == 3
    assert none.summary[FIRST_EVENT].estimate == pytest.approx(100.0)
    assert none.summary[FIRST_EVENT].hi == pytest.approx(100 + T2 * 10 / math.sqrt(3), abs=1e-4)
    acc = small.summary["test/acc"]  # the t-interval of the logits, given back: inside [0, 1]
    logits = [math.log(p / (1 - p)) for p in (0.8, 0.9, 0.85)]
    hi = iv.t_interval(logits).hi
    assert acc.estimate == pytest.approx(0.85) and acc.hi == pytest.approx(1 / (1 + math.exp(-hi)))
    # paired by seed: differences 0.7, 0.8, 0.75 (none's accuracies have no spread), sd 0.05
    diff = small.vs_reference["test/acc"].interval
    assert diff.estimate == pytest.approx(0.75) and diff.lo == pytest.approx(0.75 - T2 * 0.05 / math.sqrt(3), abs=1e-6)
    ratio = small.vs_reference["grad/first_last_ratio"].interval  # log10: −1 minus mean(−6, −4, −5) = 4 decades
    assert ratio.estimate == pytest.approx(4.0)
    assert none.verdict_share["stalled"].lo == pytest.approx(0.4385, abs=1e-4)
    assert small.verdict_pairs.interval.estimate == pytest.approx(-1.0) and small.verdict_pairs.only_reference == 3
    assert small.summary["signal/first_last_ratio"] is None
    assert small.vs_reference["signal/first_last_ratio"].interval is None
