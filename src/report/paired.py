"""Differences from the reference arm, paired by seed.

The same seed gives the same initialisation and the same data order in every arm of a condition, so an
arm is compared with its reference (`none`, or the rescue alone: `study_arms.reference_arm`) seed by
seed: the difference is taken per seed and its mean gets a Student's t-interval with n = matched seeds.
Seeds present on one side only are left out and named ("n=2 of 3; seed 2 missing in none"). When no
seed pairs, Welch's unpaired interval is the fallback, labelled so. Log measures are differenced on log10
(a factor 10^d); a pair whose value on either side is 0, negative or non-finite has no log and is left out,
counted by reason. Verdicts are paired too (failed, i.e. an event verdict, in arm / in reference per seed)
with Newcombe's paired score interval; a pair with an `inconclusive` side (too short to judge: neither
failed nor healthy) is left out and counted.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from src.report import intervals as iv
from src.report.study_read import StudyRun

HEALTHY, INCONCLUSIVE = "healthy", "inconclusive"


@dataclass(frozen=True)
class Pairing:
    """Which seeds of an arm and of its reference match."""

    reference: str
    matched: list[str]
    only_arm: list[str]  # seeds the reference lacks
    only_reference: list[str]  # seeds the arm lacks

    def note(self, arm: str) -> str:
        """`paired by seed, n=2 of 3; seed 2 missing in none`."""
        total = len(self.matched) + len(self.only_arm) + len(self.only_reference)
        text = f"paired by seed with `{self.reference}`, n={len(self.matched)}"
        if total != len(self.matched):
            text += f" of {total}"
        for seeds, side in ((self.only_arm, self.reference), (self.only_reference, arm)):
            if seeds:
                text += f"; seed{'s' if len(seeds) > 1 else ''} {', '.join(seeds)} missing in `{side}`"
        return text


def pair(arm_runs: list[StudyRun], reference_runs: list[StudyRun], reference: str) -> Pairing:
    mine, theirs = {r.seed for r in arm_runs}, {r.seed for r in reference_runs}
    order = sorted(mine | theirs, key=lambda s: (len(s), s))
    return Pairing(reference, [s for s in order if s in mine and s in theirs], [s for s in order if s not in theirs],
                   [s for s in order if s not in mine])


@dataclass(frozen=True)
class Difference:
    """Arm minus reference: the interval (log10 for log measures), how it was made and what was left out."""

    method: str  # "paired" | "unpaired (Welch: no seed pairs)"
    interval: iv.Interval | None
    diffs: list[float] = field(default_factory=list)  # the per-seed differences (paired only)
    left_out: dict[str, int] = field(default_factory=dict)  # pairs left out, by reason

    @property
    def identical(self) -> bool:
        """Every paired difference exactly 0 (the arm computed what its reference did, seed by seed)."""
        return self.method == "paired" and bool(self.diffs) and all(d == 0 for d in self.diffs)


def _value(log: bool) -> Callable[[float | None], tuple[float | None, str | None]]:
    def usable(v: float | None) -> tuple[float | None, str | None]:
        if v is None:
            return None, "not measured"
        if not log:
            return (v, None) if math.isfinite(v) else (None, "non-finite")
        logs, why = iv.split_log10([v])
        return (logs[0], None) if logs else (None, next(iter(why)))

    return usable


def difference(arm_runs: list[StudyRun], reference_runs: list[StudyRun], value: Callable[[StudyRun], float | None],
               log: bool = False, bound: float | None = None) -> Difference:
    """Paired difference of `value` (arm − reference) over matched seeds; Welch when none match.
    `bound`: the difference of a quantity in [0, 1] lies in [−1, 1]; its interval is clipped there."""
    usable = _value(log)
    ref = {r.seed: r for r in reference_runs}
    diffs: list[float] = []
    left_out: dict[str, int] = {}
    for r in arm_runs:
        if r.seed not in ref:
            continue
        (a, why_a), (b, why_b) = usable(value(r)), usable(value(ref[r.seed]))
        if a is None or b is None:
            reason = f"{why_a} in arm" if a is None else f"{why_b} in reference"
            left_out[reason] = left_out.get(reason, 0) + 1
            continue
        diffs.append(a - b)
    if diffs or any(r.seed in ref for r in arm_runs):
        interval = iv.t_interval(diffs)
        if interval is not None and bound is not None and interval.lo is not None:
            interval = iv.Interval(interval.estimate, max(-bound, interval.lo), min(bound, interval.hi), interval.n)
        return Difference("paired", interval, diffs, left_out)
    mine = [v for r in arm_runs if (v := usable(value(r))[0]) is not None]
    theirs = [v for r in reference_runs if (v := usable(value(r))[0]) is not None]
    return Difference("unpaired (Welch: no seed pairs)", iv.welch_difference(mine, theirs))


def failed(run: StudyRun) -> bool:
    """An event verdict (not `healthy`, not `inconclusive`)."""
    return run.verdict not in (HEALTHY, INCONCLUSIVE)


@dataclass(frozen=True)
class VerdictPairs:
    """Per matched seed, whether each side failed: the 2x2 table of pairs and p_arm − p_ref."""

    both: int  # failed in arm and reference
    only_arm: int  # the arm made a healthy seed fail (a harm)
    only_reference: int  # the arm made a failing seed healthy (a rescue)
    neither: int
    interval: iv.Interval | None  # fraction failed, arm − reference (Newcombe paired); None when no pair is left
    inconclusive: int = 0  # pairs left out: a side `inconclusive`

    @property
    def n(self) -> int:
        return self.both + self.only_arm + self.only_reference + self.neither


def verdict_pairs(arm_runs: list[StudyRun], reference_runs: list[StudyRun]) -> VerdictPairs | None:
    """The paired verdict table over seeds with a verdict on both sides; None when no seed pairs."""
    ref = {r.seed: r for r in reference_runs if r.verdict}
    matched = [(r, ref[r.seed]) for r in arm_runs if r.verdict and r.seed in ref]
    if not matched:
        return None
    judged = [(failed(a), failed(b)) for a, b in matched if INCONCLUSIVE not in (a.verdict, b.verdict)]
    counts = [sum(1 for p in judged if p == want) for want in ((True, True), (True, False), (False, True),
                                                                  (False, False))]
    return VerdictPairs(*counts, interval=iv.newcombe_paired(*counts), inconclusive=len(matched) - len(judged))
