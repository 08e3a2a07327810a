"""Print the calibration table of `tests/zoo.py`: `python -m tests.zoo_table [name ...]` (a name part selects cases).

Columns: the case, the verdict it was built to earn, its verdict, the first event (step, source, value), the
timeline (state and steps, `health/timeline.json`), the state at the end, and the training accuracy.
"""

from __future__ import annotations

import logging
import sys
import warnings

from tests.zoo import ZOO, run_case


def compact(segments: list[list]) -> str:
    """`healthy 0-10, vanishing 11-59`: the timeline's segments on one line."""
    return ", ".join(f"{state} {start}-{end}" for state, start, end in segments)


def main(names: list[str]) -> None:
    warnings.filterwarnings("ignore")
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    print("| case | built to | verdict | first event (step, source, value) | timeline | final state | train acc |")
    print("|---|---|---|---|---|---|---|")
    for case in ZOO:
        if names and not any(n in case.name for n in names):
            continue
        r = run_case(case)
        first = r.events[0] if r.events else None
        where = f"{first.step} ({first.source}, {first.value:.2g})" if first else "—"
        timeline = r.monitor.state.timeline
        print(f"| {case.name} | {case.expected} | {r.verdict} | {where} | {compact(timeline.segments)} | "
              f"{timeline.final_state} | {r.train_acc:.2f} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
