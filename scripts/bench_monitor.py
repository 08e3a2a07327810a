#!/usr/bin/env python
"""Training-step time of every mode (bare loop, module, monitor, monitor+<instrument>), interleaved in one
process, and the default run's wall time. See `bench/cli.py` for the settings, `docs/performance.md` for
how to read the table.

    python scripts/bench_monitor.py            # full table (minutes on CPU)
    python scripts/bench_monitor.py --quick    # smoke test
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere, without installing

from bench.cli import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
