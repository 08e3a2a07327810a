"""`python -m src.reap`: close the runs whose process is gone (KILLED, `outcome=lost`).

The same reaper runs by itself at every `python -m src.train` and sweep start; this command is for
a store nobody has started a run on since a crash, or to see first (`--dry-run`). It works on the
store `MLFLOW_TRACKING_URI` names (else the project's sqlite store), or `--tracking-uri`.
"""

from __future__ import annotations

import argparse
import logging
import sys

from src.tracking.reaper import DEFAULT_LOST_AFTER_S


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m src.reap", description=__doc__.splitlines()[0])
    parser.add_argument("--lost-after-s", type=float, default=DEFAULT_LOST_AFTER_S,
                        help="a RUNNING run of another host is lost after this many seconds without a heartbeat "
                             f"(default {DEFAULT_LOST_AFTER_S:g}); runs of this host are judged by their pid")
    parser.add_argument("--dry-run", action="store_true", help="list the lost runs, change nothing")
    parser.add_argument("--tracking-uri", default=None, help="the MLflow store (default: MLFLOW_TRACKING_URI)")
    args = parser.parse_args(argv)
    if not args.lost_after_s > 0:
        parser.error(f"--lost-after-s={args.lost_after_s:g} is not allowed; it must be a number of seconds > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)  # the reaper's lines
    from src.tracking.client import client
    from src.tracking.reachability import ensure_reachable
    from src.tracking.reaper import reap
    from src.tracking.redaction import redact_uri
    from src.tracking.store import tracking_uri

    uri = args.tracking_uri or tracking_uri()
    ensure_reachable(uri)
    lost = reap(client(uri), args.lost_after_s, dry_run=args.dry_run)
    verb = "would close" if args.dry_run else "closed"
    print(f"Reaper: {verb} {len(lost)} lost run(s) in {redact_uri(uri)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
