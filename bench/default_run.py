"""Wall time of the default run, `python -m src.train`, as a user starts it: a fresh process each time,
imports, Hydra, the MLflow run, 15 epochs of LeNet-5 on mnist5k, the test and the end-of-run plots.

Each run logs into one throwaway sqlite store, created (and its schema migrated) before the first
timed run, as a user's store is after their first run; outputs go to a temporary folder. The run's
output goes to a pseudo-terminal, as in a user's shell, so the progress bar draws (and costs) what it
does there; through a pipe rich would draw almost nothing. Peak RSS is the largest resident set of
any run, in MiB, as the kernel counts it for a waited-for child (`ru_maxrss`). A child counts the
resident set of the process it was forked from too, so each run is started by a small helper process
(`PEAK`), not by the benchmark, which holds gigabytes after timing ResNet-152.
"""

from __future__ import annotations

import os
import pty
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEAK = (  # runs argv[1:], then prints the largest resident set of its children (KiB on Linux)
    "import resource, subprocess, sys; status = subprocess.call(sys.argv[1:]); "
    "print(f'\\npeak_rss_kib={resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}'); sys.exit(status)"
)
QUICK = (  # `--quick`: the same entry point and path through the code, a few batches
    "trainer.max_epochs=1", "trainer.limit_train_batches=5", "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
)


@dataclass(frozen=True)
class DefaultRuns:
    walls_s: list[float]
    peak_rss_mib: float  # the largest of the runs
    test_acc: float | None  # of the last run (every run of the default config gives the same one)

    @property
    def wall_s(self) -> float:
        return statistics.median(self.walls_s)


def run_in_terminal(cmd: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run `cmd` with a pseudo-terminal as its stdout and stderr; return (exit status, what it printed)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 1 << 16)
        except OSError:  # EIO: the child's side of the terminal is closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(), b"".join(chunks).decode(errors="replace")


def time_default_runs(count: int, overrides: tuple[str, ...] = (), threads: int = 0) -> DefaultRuns:
    """`count` runs of `python -m src.train <overrides>` one after the other; raises if one fails."""
    from mlflow.tracking import MlflowClient

    folder = Path(tempfile.mkdtemp(prefix="bench-default-"))
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    MlflowClient(tracking_uri=uri).search_experiments()  # creates and migrates the store, untimed
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "COLUMNS": "120"}
    env.pop("GRADREG_RUN_ID", None)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    cmd = [sys.executable, "-m", "src.train", f"paths.log_dir={folder / 'outputs'}", *overrides]
    walls, peaks, accuracy = [], [], None
    for _ in range(count):
        start = time.perf_counter()
        status, out = run_in_terminal([sys.executable, "-c", PEAK, *cmd], env)
        walls.append(time.perf_counter() - start)
        if status != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({status}):\n{out[-3000:]}")
        found = re.search(r"test/acc = ([0-9.]+)", out)
        accuracy = float(found.group(1)) if found else None
        peaks.append(int(re.search(r"peak_rss_kib=(\d+)", out).group(1)) / 1024)
    return DefaultRuns(walls, max(peaks), accuracy)
