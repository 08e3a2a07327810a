"""The second edition's analysis on hand-built study runs: pairs that must pair, a seed missing on one side,
identical arms, zeros that must be reported (never floored), an accuracy interval that stays inside [0, 1],
TOST that is equivalent and one that is inconclusive, the pooled rescue rate, and rescue+regularizer arms
compared with the rescue alone.

Quantiles from a printed t table: t_{0.975, 2} = 4.3027, t_{0.975, 1} = 12.706; t_{0.95, 2} = 2.9200.
"""

from __future__ import annotations

import math

import pytest

from src.report import intervals as iv
from src.report.equivalence import ACCURACY_MARGIN, seeds_for_equivalence, smallest_detectable_flip, tost
from src.report.pooled import pooled_rates
from src.report.study import ACCURACY, VERDICT, build_cells
from src.report.study_arms import arm_family, reference_arm, study_labels
from src.report.study_format import difference, summary
from src.report.study_read import StudyRun

T2, T1, T2_90 = 4.302653, 12.706205, 2.919986


def run(arm: str, seed: int, acc: float | None = 0.9, verdict: str = "healthy", step: int | None = None,
        condition: str = "lenet5_dying", **values: float | None) -> StudyRun:
    measured = {"test/acc": acc, "grad/first_last_ratio": values.get("ratio"), "train/loss": values.get("loss")}
    return StudyRun(f"{condition}-{arm}{seed}", condition, arm, str(seed), seed, verdict, step, measured)


def cell(cells, arm: str, condition: str = "lenet5_dying"):  # noqa: ANN001, ANN201
    return next(c for c in cells if c.arm == arm and c.condition == condition)


def test_second_edition_labels_and_references() -> None:
    assert study_labels(["experiment=study2_lenet5_long", "+study/arm=l2_1.5e-4", "seed=0"]) == \
        ("lenet5_long", "l2_1.5e-4")
    assert study_labels(["experiment=study_vgg19_dying", "+study/arm=none"]) == ("vgg19_dying", "none")
    assert study_labels(["experiment=seed_grid", "+study/arm=none"]) is None
    assert reference_arm("none") is None and reference_arm("l2_1e-3") == "none"
    assert reference_arm("rescue_clip") == "none" and reference_arm("rescue_clip+l2_1e-3") == "rescue_clip"
    assert arm_family("rescue_clip+l2_1e-3") == ("l2", 1e-3) and arm_family("rescue_clip") == ("remedy", None)
    assert arm_family("dropout_trunk_p05") == ("dropout", 0.5) and arm_family("l1_adam") == ("l1", None)
    assert arm_family("l2_3e-3_bias") == ("l2", 3e-3) and arm_family("w1_16") == ("remedy", None)


def test_accuracy_differences_pair_by_seed_and_name_the_missing_one() -> None:
    """Seed offsets shared by both arms cancel when paired; Welch would not see it."""
    base = {0: 0.50, 1: 0.70, 2: 0.90}
    runs = [run("none", s, a) for s, a in base.items()]
    runs += [run("l2_1e-3", s, base[s] + d) for s, d in ((0, 0.010), (1, 0.012))]  # seed 2 never ran
    cells = build_cells(runs)
    l2 = cell(cells, "l2_1e-3")
    d = l2.vs_reference[ACCURACY]
    assert d.method == "paired" and d.diffs == pytest.approx([0.010, 0.012])
    half = T1 * statistics_sd([0.010, 0.012]) / math.sqrt(2)
    assert d.interval.estimate == pytest.approx(0.011) and d.interval.lo == pytest.approx(0.011 - half)
    assert l2.pairing.note("l2_1e-3") == "paired by seed with `none`, n=2 of 3; seed 2 missing in `l2_1e-3`"
    unpaired = iv.welch_difference([0.51, 0.712], [0.5, 0.7, 0.9])
    assert unpaired.hi - unpaired.lo > 10 * (d.interval.hi - d.interval.lo)  # pairing is what gives the power


def statistics_sd(values: list[float]) -> float:
    import statistics

    return statistics.stdev(values)


def test_identical_arms_say_so_and_are_equivalent() -> None:
    runs = [run(arm, s, 0.1 + 0.01 * s, "stalled", 5) for arm in ("none", "clip") for s in range(3)]
    clip = cell(build_cells(runs), "clip")
    assert clip.vs_reference[ACCURACY].identical
    assert difference(clip.vs_reference[ACCURACY]) == "identical in every seed (n=3)"
    assert clip.equivalence[ACCURACY].result == "equivalent"
    assert clip.verdict_pairs.both == 3 and clip.equivalence[VERDICT].result == "inconclusive"
    assert "n=9" in clip.equivalence[VERDICT].text()  # all seeds agreeing shows equivalence from 9 seeds


def test_tost_equivalent_and_inconclusive_by_hand() -> None:
    small = [0.004, -0.002, 0.001]  # mean 0.001, sd 0.0030
    e = tost(small)
    sd = statistics_sd(small)
    assert e.result == "equivalent" and e.ci90.hi == pytest.approx(0.001 + T2_90 * sd / math.sqrt(3), abs=1e-9)
    assert e.ci90.hi < ACCURACY_MARGIN and e.p_tost < 0.05
    wide = [0.10, -0.05, 0.02]  # contains 0, but cannot rule out ±0.02: not "no effect"
    w = tost(wide)
    assert w.result == "inconclusive" and w.ci95.lo < 0 < w.ci95.hi and "n too small" in w.text()
    assert tost([0.5, 0.6, 0.55]).result == "different"
    assert tost([0.001]).result == "inconclusive"  # one pair: no interval


def test_smallest_detectable_flip_and_verdict_margin() -> None:
    assert smallest_detectable_flip(3) == 3  # only a full 3/3 -> 0/3 flip excludes 0
    assert smallest_detectable_flip(10) == 4
    assert seeds_for_equivalence(0.25) == 9
    # Newcombe's paired interval for 3 rescues of 3: excludes 0, inside [-1, 1]
    i = iv.newcombe_paired(0, 0, 3, 0)
    assert i.estimate == -1.0 and i.lo == -1.0 and i.hi < 0


def test_accuracy_near_one_keeps_its_interval_inside_zero_one() -> None:
    runs = [run("none", s, a) for s, a in enumerate((0.99, 0.995, 0.97))]
    acc = build_cells(runs)[0].summary[ACCURACY]
    assert acc.hi <= 1.0 and acc.lo >= 0.0 and acc.lo < 0.985 < acc.hi
    t = iv.t_interval([0.99, 0.995, 0.97])
    assert t.hi > 1.0  # the plain t-interval would leave [0, 1]


def test_zeros_and_negatives_are_counted_never_floored() -> None:
    logs, left_out = iv.split_log10([1e-2, 0.0, -1.0, math.nan, 1e-4])
    assert logs == pytest.approx([-2.0, -4.0]) and left_out == {"zero": 1, "negative": 1, "non-finite": 1}
    runs = [run("none", s, ratio=r) for s, r in enumerate((0.0, 0.0, 0.0))]
    runs += [run("l1_1e-3", s, ratio=r) for s, r in enumerate((1e-3, 0.0, 1e-5))]
    cells = build_cells(runs)
    none, l1 = cell(cells, "none"), cell(cells, "l1_1e-3")
    assert none.summary["grad/first_last_ratio"] is None and none.left_out["grad/first_last_ratio"] == {"zero": 3}
    assert summary(None, none.left_out["grad/first_last_ratio"]) == "all 3 values 0 (no log)"
    kept = l1.summary["grad/first_last_ratio"]
    assert kept.n == 2 and kept.estimate == pytest.approx(1e-4)  # geometric mean of 1e-3 and 1e-5, not of a floor
    assert "left out: 1 zero" in summary(kept, l1.left_out["grad/first_last_ratio"])
    d = l1.vs_reference["grad/first_last_ratio"]  # every pair has a zero on a side: no difference, and why
    assert d.interval is None and d.left_out == {"zero in reference": 2, "zero in arm": 1}
    assert "pairs left out" in difference(d, log=True)


def test_pooled_rescue_rate_over_failed_references() -> None:
    runs = [run("none", s, verdict="exploding", step=3) for s in range(3)]
    runs += [run("l2_1e-3", 0), run("l2_1e-3", 1, verdict="exploding", step=3), run("l2_1e-3", 2,
                                                                                     verdict="inconclusive")]
    runs += [run("clip", s) for s in range(3)]
    runs += [run(arm, s, condition="lenet5_healthy") for arm in ("none", "l1_1e-4") for s in range(2)]
    runs += [run("l1_1e-4", 2, condition="lenet5_healthy")]  # its `none` seed 2 never ran
    pooled = pooled_rates(runs)
    reg, remedy = pooled["regularizer"], pooled["remedy"]
    assert (reg.rescued, reg.failed_reference, reg.harmed, reg.healthy_reference) == (1, 2, 0, 2)
    assert reg.left_out == {"inconclusive (too short to judge)": 1, "seed missing in the reference arm": 1}
    assert reg.rescue_rate.lo == pytest.approx(iv.wilson(1, 2).lo) and reg.rescue_rate.hi <= 1
    assert (remedy.rescued, remedy.failed_reference) == (3, 3) and remedy.conditions == {"lenet5_dying"}


def test_rescue_plus_regularizer_is_compared_with_the_rescue_alone() -> None:
    runs = [run("none", s, 0.1, "nonfinite", 1) for s in range(2)]
    runs += [run("rescue_clip", s, 0.80 + 0.01 * s) for s in range(2)]
    runs += [run("rescue_clip+l2_1e-3", s, 0.85 + 0.01 * s) for s in range(2)]
    cells = build_cells(runs)
    assert [c.arm for c in cells] == ["none", "rescue_clip", "rescue_clip+l2_1e-3"]
    top = cell(cells, "rescue_clip+l2_1e-3")
    assert top.reference == "rescue_clip" and top.vs_reference[ACCURACY].diffs == pytest.approx([0.05, 0.05])
    assert cell(cells, "rescue_clip").reference == "none"
    assert cell(cells, "none").fixed_early and not cell(cells, "rescue_clip").fixed_early
