"""Print the calibration table (case x verdict x first-event step) of `tests/zoo.py`: `python -m tests.zoo_table`."""

from __future__ import annotations

import logging
import sys
import warnings

from tests.zoo import ZOO, run_case


def main(names: list[str]) -> None:
    warnings.filterwarnings("ignore")
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    print("| case | built to | verdict | first event (step, source, value) | train acc |")
    print("|---|---|---|---|---|")
    for case in ZOO:
        if names and not any(n in case.name for n in names):
            continue
        r = run_case(case)
        first = r.events[0] if r.events else None
        where = f"{first.step} ({first.source}, {first.value:.2g})" if first else "—"
        print(f"| {case.name} | {case.expected} | {r.verdict} | {where} | {r.train_acc:.2f} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
