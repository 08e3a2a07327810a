"""`scripts/ui_screenshots.py` on a tiny real sweep: `mlflow ui` started on the store, a real headless
Chromium, five PNGs that show something (the sweep's dashboard inside the artifact view among them), and
the runs table checked for the training view, every job's
name and the dataset digests. Slow (a minute or two): run with `-m slow`."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from src.paths import PROJECT_ROOT
from tests.sweeps import run_sweep, tail

SHOTS = ("runs_table", "sweep_charts", "run_metrics", "run_artifacts", "sweep_dashboard")


def load_script(name: str) -> Any:
    """`scripts/<name>.py` as a module."""
    spec = importlib.util.spec_from_file_location(name, PROJECT_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.skipif(load_script("headless_chromium").find_chromium() is None,
                    reason="no Chromium on PATH (apt-get install chromium): the screenshots need a real browser")
def test_screenshots_of_a_tiny_sweep_show_the_training_view(tmp_path: Path, mlflow_store: str) -> None:
    script = load_script("ui_screenshots")
    proc = run_sweep(tmp_path, mlflow_store, "optim.lr=0.01,0.05")
    assert proc.returncode == 0, tail(proc)
    out = tmp_path / "shots"
    assert script.main(["--store", mlflow_store, "--out", str(out), "--width", "1280", "--height", "800"]) == 0
    record = json.loads((out / "shots.json").read_text())
    assert record["checks"] == {"training_view": True, "all_run_names": True, "dataset_inputs": True}
    assert sorted(record["target"]["run_names"]) == ["lenet5-none-sgd-lr0.01-s0", "lenet5-none-sgd-lr0.05-s0"]
    digests = set()
    for name in SHOTS:
        png = out / f"{name}.png"
        assert png.stat().st_size <= 150_000, name
        with Image.open(png) as image:
            width, height = image.size  # the runs table is cut below its last row
            assert width == 1280 and (height == 800 or name == "runs_table" and 400 <= height <= 800), name
            pixels = np.asarray(image.convert("RGB"))
        assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 30, f"{name} looks blank"
        digests.add(hashlib.sha256(pixels.tobytes()).hexdigest())
    assert len(digests) == len(SHOTS)  # five different pages
