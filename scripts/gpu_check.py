#!/usr/bin/env python
"""GPU readiness of the monitor: no host synchronization between flushes, its overhead on ResNet-152 and VGG-19
(width 1, batch 128, fp32, bf16-mixed and 16-mixed), and the fp16 skipped-step count. See `bench/gpu.py` and
`docs/performance.md`.

    python scripts/gpu_check.py          # on a GPU machine (about 4-5 minutes on one H100/H200, estimated)
    python scripts/gpu_check.py --cpu    # dry run of the same code on the CPU, tiny sizes, syncs emulated
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere, without installing

from bench.gpu import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
