"""The margins behind `plateau`'s thresholds, measured on the calibration zoo's pairs.

`python scripts/plateau_margins.py mlp-relu-kaiming-small-lr lenet5-sigmoid-2000` trains each named case of
`tests/zoo.py` with the default monitor and prints, over the steps where `plateau`'s window is full:
the lowest window mean against the margin (1 − plateau_margin)·ln C, and, among the windows near chance,
the smallest and largest drop (first half's mean − second half's) against plateau_min_drop·ln C, and the
largest once the windows began to hold (after a stuck net's first fall from its initial loss to ln C). A
net that learns slowly needs its smallest drop near chance above the limit; a net stuck at chance its
largest once plateaued below it. (The sigmoid LeNet-5 takes minutes on a CPU.)
"""

from __future__ import annotations

import json
import logging
import sys
import warnings

from src.monitor.detectors.plateau import PlateauDetector
from tests.zoo import ZOO, run_case


class Recording(PlateauDetector):
    """`plateau` as it is, recording each full window's mean and drop."""

    seen: list[tuple[int, float, float]] = []

    def observe(self, view):  # noqa: ANN001, ANN201
        event = super().observe(view)
        if len(self.losses) == self.t.plateau_window:
            half = len(self.losses) // 2
            drop = sum(self.losses[:half]) / half - sum(self.losses[half:]) / (len(self.losses) - half)
            Recording.seen.append((view.step, sum(self.losses) / len(self.losses), drop))
        return event


def main(names: list[str]) -> None:
    warnings.filterwarnings("ignore")
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import src.monitor.detectors as registry

    registry.DETECTORS = tuple(Recording if d is PlateauDetector else d for d in registry.DETECTORS)
    for case in (c for c in ZOO if c.name in names):
        Recording.seen = []
        result = run_case(case)
        t, chance = result.monitor.thresholds, 2.302585
        first = next((e for e in result.events if e.kind == "plateau"), None)
        onset = None if first is None else first.since + t.plateau_window - 1  # the first window that held
        near = [(s, m, d) for s, m, d in Recording.seen if m >= (1 - t.plateau_margin) * chance]
        print(json.dumps({
            "case": case.name, "verdict": result.verdict, "full_windows": len(Recording.seen),
            "near_chance_windows": len(near), "margin_loss": round((1 - t.plateau_margin) * chance, 4),
            "lowest_window_mean": round(min((m for _, m, _ in Recording.seen), default=float("nan")), 4),
            "drop_limit": round(t.plateau_min_drop * chance, 4),
            "smallest_drop_near_chance": round(min((d for *_, d in near), default=float("nan")), 4),
            "largest_drop_near_chance": round(max((d for *_, d in near), default=float("nan")), 4),
            "largest_drop_once_plateaued": round(max((d for s, _, d in near if onset is not None and s >= onset),
                                                     default=float("nan")), 4),
        }), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
