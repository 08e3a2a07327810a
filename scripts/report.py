#!/usr/bin/env python
"""Comparison report of a sweep, an experiment or a list of runs, read from MLflow.

    python scripts/report.py                         # the latest sweep in the store
    python scripts/report.py --sweep 20250101-120000-3fa2
    python scripts/report.py --experiment seed_grid
    python scripts/report.py --runs <run id> <run id> ...
    python scripts/report.py --study study --out docs/seed_study   # the study: condition x arm, intervals
    python scripts/report.py --study study2 --out docs/seed_study2 # the second edition (blocks study2_*)
    python scripts/report.py --study-json docs/seed_study/study.json --out reports/study_reread
                                                     # a saved study.json re-analysed, without its store

Writes `reports/<id>/report.md` (table + figures), `report.json` (the table's figures), the PNGs and
the interactive `gradient_health.html` (src/report/dashboard.py), and logs them on the sweep's parent
run: under `report/`, the dashboard as `dashboard/gradient_health.html` (the one the sweep made at its
end, re-made). With `--study`, writes `study.md`,
`study.json`, `dose_response.png` and `verdict_heatmap.png` of that MLflow experiment's study runs
(`src/report/study_document.py`: arms against their reference paired by seed, TOST, pooled rescue rates,
time in states, L2 doses) into `--out` (default reports/study); `study.json` holds every number the prose
needs (`src/report/study_json.py`: `study_numbers`; `src/report/prose_numbers.py`: `numbers_in_prose`).
With `--study-json`, the same report of the runs saved in a `study.json` (the first edition's too). The store is
`MLFLOW_TRACKING_URI` or the project's sqlite store (`--tracking-uri` overrides both).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from anywhere: this checkout's `src`, not another one

from src.report.dashboard import FILE_NAME, log_dashboard  # noqa: E402
from src.report.document import select, write_report  # noqa: E402
from src.report.study_document import write_report_of_runs, write_study_report  # noqa: E402
from src.report.study_read import runs_from_study_json  # noqa: E402
from src.tracking.client import client  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--sweep", help="sweep id (the `sweep_id` tag); default: the latest sweep")
    group.add_argument("--experiment", help="MLflow experiment name: all its runs")
    group.add_argument("--runs", nargs="+", metavar="RUN_ID", help="these runs")
    group.add_argument("--study", metavar="EXPERIMENT", help="the study report of this MLflow experiment")
    group.add_argument("--study-json", type=Path, metavar="PATH", help="the study report of a saved study.json")
    parser.add_argument("--out", type=Path, help="output folder (default: reports/<id>)")
    parser.add_argument("--tracking-uri", help="MLflow store (default: MLFLOW_TRACKING_URI or mlruns/mlflow.db)")
    parser.add_argument("--no-log", action="store_true", help="do not log the report to the sweep's parent run")
    parser.add_argument("--note", default="", help="a line for the study report (e.g. its wall time and load)")
    args = parser.parse_args(argv)

    given = list(argv if argv is not None else sys.argv[1:])
    if "--note" in given:  # the note is printed in the report itself
        del given[given.index("--note"):given.index("--note") + 2]
    command = "python scripts/report.py " + shlex.join(given)
    if args.study_json:
        if not args.study_json.is_file():
            print(f"--study-json: no file {args.study_json}", file=sys.stderr)
            return 2
        data = json.loads(args.study_json.read_text())
        md = write_report_of_runs(runs_from_study_json(data), data.get("experiment", "study"),
                                  args.out or ROOT / "reports" / "study_reread", f"re-read from `{args.study_json}`",
                                  command.strip(), args.note)
        print(f"Wrote {md}")
        return 0
    mlflow_client = client(args.tracking_uri)
    if args.study:
        md = write_study_report(mlflow_client, args.study, args.out or ROOT / "reports" / "study", command.strip(),
                                args.note)
        print(f"Wrote {md}")
        return 0
    report_id, parent, runs, what = select(mlflow_client, args)
    if not runs:
        raise SystemExit(f"{what}: no runs to report")
    out_dir = args.out or ROOT / "reports" / report_id
    md = write_report(mlflow_client, report_id, parent, runs, what, out_dir, command.strip())
    if parent is not None and not args.no_log:
        for path in sorted(out_dir.iterdir()):  # the dashboard once, in its own folder (it weighs ~5 MB)
            if path.is_file() and path.name != FILE_NAME:
                mlflow_client.log_artifact(parent.info.run_id, str(path), "report")
        dashboard = log_dashboard(mlflow_client, parent.info.run_id, out_dir / FILE_NAME)
        print(f"Logged to the sweep's parent run {parent.info.run_id} under report/ (dashboard: {dashboard})")
    print(f"Wrote {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
