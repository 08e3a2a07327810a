"""`python -m src.reap`: close the runs whose process is gone (KILLED, `outcome=lost`).

The same reaper runs by itself at every `python -m src.train` and sweep start; this command is for
a store nobody has started a run on since a crash, or to see first (`--dry-run`). It works on the
store `MLFLOW_TRACKING_URI` names (else the project's sqlite store), or `--tracking-uri`; a run of
another host is lost after `--lost-after-s`, else `GRADREG_LOST_AFTER_S`, else 900 s, as for the
reaper every run starts. A bad setting or an unusable store: its message alone, exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys

from src.settings import UserError
from src.settings.environment import DEFAULT_LOST_AFTER_S, LOST_AFTER_ENV


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m src.reap", description=__doc__.splitlines()[0])
    parser.add_argument("--lost-after-s", type=float, default=None,
                        help="a RUNNING run of another host is lost after this many seconds without a heartbeat "
                             f"(default: {LOST_AFTER_ENV}, else {DEFAULT_LOST_AFTER_S:g}); runs of this host are "
                             "judged by their pid")
    parser.add_argument("--dry-run", action="store_true", help="list the lost runs, change nothing")
    parser.add_argument("--tracking-uri", default=None, help="the MLflow store (default: MLFLOW_TRACKING_URI)")
    args = parser.parse_args(argv)
    if args.lost_after_s is not None and not args.lost_after_s > 0:
        parser.error(f"--lost-after-s={args.lost_after_s:g} is not allowed; it must be a number of seconds > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return reap_store(args)
    except UserError as err:
        print(err, file=sys.stderr)
        return 2


def reap_store(args: argparse.Namespace) -> int:
    """Close (or list) the lost runs of the store the arguments name."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)  # the reaper's lines
    from src.tracking.client import client
    from src.tracking.reachability import ensure_reachable
    from src.tracking.reaper import liveness_settings, reap
    from src.tracking.redaction import redact_uri
    from src.tracking.store import tracking_uri

    _, env_lost_after_s, _ = liveness_settings()  # checked even when --lost-after-s overrides it
    uri = args.tracking_uri or tracking_uri()
    ensure_reachable(uri, writes=not args.dry_run)  # a store locked by another process: a bounded wait, one line
    lost = reap(client(uri), args.lost_after_s or env_lost_after_s, dry_run=args.dry_run)
    verb = "would close" if args.dry_run else "closed"
    print(f"Reaper: {verb} {len(lost)} lost run(s) in {redact_uri(uri)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
