#!/usr/bin/env python
"""The second edition's own readings and its prose: `docs/seed_study2/{long_horizon,bn_l2}.{json,png}` and
`run_time.json` (each block's run time, from the runs' own timestamps) from the store, then `docs/seed_study.md`
from every JSON of the study (nothing typed by hand: `src/report/study_prose.py`).

    python scripts/study_prose.py                    # the project's store, experiment study2
    python scripts/study_prose.py --tracking-uri sqlite:////path/mlflow.db --prose-only

`make study` runs it after `scripts/report.py --study study2 --out docs/seed_study2` (the cells' study.json).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's `src`

from src.report import bn_l2, long_horizon, run_time  # noqa: E402
from src.report.study_prose import write_prose  # noqa: E402
from src.tracking.client import client  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracking-uri", help="MLflow store (default: MLFLOW_TRACKING_URI or mlruns/mlflow.db)")
    parser.add_argument("--experiment", default="study2")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "seed_study2")
    parser.add_argument("--prose", type=Path, default=ROOT / "docs" / "seed_study.md")
    parser.add_argument("--prose-only", action="store_true", help="rewrite the prose from the JSON files only")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.prose_only:
        mlflow_client = client(args.tracking_uri)
        runs = long_horizon.long_runs(mlflow_client, args.experiment)
        long_horizon.figure(runs, args.out / "long_horizon.png")
        (args.out / "long_horizon.json").write_text(json.dumps([long_horizon.as_dict(r) for r in runs], indent=1))
        bn_runs = bn_l2.bn_l2_runs(mlflow_client, args.experiment)
        bn_l2.figure(bn_runs, args.out / "bn_l2.png")
        (args.out / "bn_l2.json").write_text(json.dumps([r.summary() for r in bn_runs], indent=1))
        times = run_time.block_times(mlflow_client, args.experiment)
        (args.out / "run_time.json").write_text(json.dumps(times, indent=1))
    path = write_prose(args.out, ROOT / "docs" / "seed_study" / "study.json", args.prose)
    print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
