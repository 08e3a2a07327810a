"""Pooled rates over all runs: how often did a regularizer (or a remedy) rescue a seed that failed without it?

A "rescue" is a run whose verdict is `healthy` while its paired reference run (same condition and seed,
arm `none` or the rescue alone: `study_arms.reference_arm`) failed, i.e. ended with an event verdict. The
rate pools every such pair of the study, all conditions and doses together, with its Wilson interval:
per cell the study has 3 seeds, pooled it has dozens, which is what a claim like "L2 prevents exploding
gradients" needs. The mirror rate, "harm", counts runs that failed where their reference was healthy.

Left out, and counted: runs whose seed the reference lacks, and pairs where either side has no verdict or
is `inconclusive` (too short to judge: neither failed nor healthy).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from src.report import intervals as iv
from src.report.study_arms import is_regularizer, reference_arm
from src.report.study_read import StudyRun

HEALTHY, INCONCLUSIVE = "healthy", "inconclusive"
GROUPS = ("regularizer", "remedy")


def failed(verdict: str | None) -> bool:
    return verdict is not None and verdict not in (HEALTHY, INCONCLUSIVE)


@dataclass
class Pooled:
    group: str  # "regularizer" | "remedy"
    rescued: int = 0  # healthy where the reference failed
    failed_reference: int = 0  # pairs whose reference failed
    harmed: int = 0  # failed where the reference was healthy
    healthy_reference: int = 0
    conditions: set[str] = field(default_factory=set)  # conditions with a failed reference pair
    left_out: Counter[str] = field(default_factory=Counter)

    @property
    def rescue_rate(self) -> iv.Interval | None:
        return iv.wilson(self.rescued, self.failed_reference)

    @property
    def harm_rate(self) -> iv.Interval | None:
        return iv.wilson(self.harmed, self.healthy_reference)


def pooled_rates(runs: list[StudyRun]) -> dict[str, Pooled]:
    """Rescue and harm rates of the regularizer arms and of the remedy arms over all their paired runs
    (`runs`: one per condition x arm x seed)."""
    by_key = {(r.condition, r.arm, r.seed): r for r in runs}
    out = {g: Pooled(g) for g in GROUPS}
    for r in runs:
        reference = reference_arm(r.arm)
        if reference is None:
            continue
        pool = out["regularizer" if is_regularizer(r.arm) else "remedy"]
        ref = by_key.get((r.condition, reference, r.seed))
        if ref is None:
            pool.left_out["seed missing in the reference arm"] += 1
        elif not r.verdict or not ref.verdict:
            pool.left_out["no verdict"] += 1
        elif INCONCLUSIVE in (r.verdict, ref.verdict):
            pool.left_out["inconclusive (too short to judge)"] += 1
        elif failed(ref.verdict):
            pool.failed_reference += 1
            pool.rescued += r.verdict == HEALTHY
            pool.conditions.add(r.condition)
        else:
            pool.healthy_reference += 1
            pool.harmed += failed(r.verdict)
    return out


def rate_text(k: int, n: int, interval: iv.Interval | None) -> str:
    """`3 of 40 (7.5% [2.6%, 19.9%], Wilson)`; "no pair" when n = 0."""
    if interval is None:
        return "no pair"
    return f"{k} of {n} ({interval.estimate:.1%} [{interval.lo:.1%}, {interval.hi:.1%}], Wilson)"


def left_out_text(left_out: dict[str, int]) -> str:
    """`; left out: 2 inconclusive (too short to judge)` or ""."""
    return "; left out: " + ", ".join(f"{n} {why}" for why, n in left_out.items()) if left_out else ""
