#!/usr/bin/env python
"""Where a run's time goes: one real `python -m src.train` run under cProfile, summarized per training step.

    python scripts/profile_run.py                                  # the default run (LeNet-5, mnist5k, 15 epochs)
    python scripts/profile_run.py trainer.max_epochs=2 --top 30    # any overrides of the entry point
    python scripts/profile_run.py --save run.prof                  # keep the raw profile (snakeviz, pstats)

The run goes through the real entry point in this process (Hydra, validation, MLflow run, fit, test), into
a throwaway sqlite store unless `--keep-store`; the store is created and migrated beforehand, in another
process, as a user's store is after their first run (migrating a new store takes seconds). The summary
gives, in milliseconds per training step (total time of a part divided by the number of `training_step`
calls):

- *parts*: cumulative time of the functions that make up each concern (the progress bar, `self.log`,
  torchmetrics, the data loader, the logger's MLflow writes, the monitor, forward/backward/update, ...);
  indented parts lie inside the part above them;
- *top functions*: self time (time in a function's own code, not in what it calls).

cProfile adds a fixed cost to every Python call, so Python-heavy parts (Lightning's hooks, `self.log`,
the progress bar) look larger than they are and tensor kernels smaller: read this to find *where* the
time goes, and `scripts/bench_monitor.py` for what a step really costs. Threads (the rich progress
bar's refresh thread, data-loader workers) are not profiled: their cost shows only as a slower run.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from anywhere: this checkout's `src`

PL = "pytorch_lightning/"
# (label, depth, functions as (file suffix, function name)); a part at depth d lies inside the part above it
PARTS: tuple[tuple[str, int, tuple[tuple[str, str], ...]], ...] = (
    ("imports (all modules loaded during the run)", 0, (("<frozen importlib._bootstrap>", "_find_and_load"),)),
    ("training batches (Lightning's whole batch loop)", 0, ((PL + "loops/training_epoch_loop.py", "advance"),)),
    ("next batch from the data loader", 1, ((PL + "loops/fetchers.py", "__next__"),)),
    ("batch to device", 1, ((PL + "strategies/strategy.py", "batch_to_device"),)),
    ("training_step (forward, loss, metrics, self.log)", 1, (("src/training/module.py", "training_step"),)),
    ("network forward", 2, (("src/training/module.py", "forward"),)),
    ("torchmetrics (accuracy update)", 2, (("torchmetrics/metric.py", "forward"),
                                            ("torchmetrics/metric.py", "wrapped_func"))),
    ("backward", 1, (("torch/_tensor.py", "backward"),)),
    ("optimizer update (torch)", 1, (("torch/optim/sgd.py", "sgd"), ("torch/optim/adam.py", "adam"),
                                      ("torch/optim/adamw.py", "adamw"))),
    ("after backward: on_before_optimizer_step hooks, clipping", 1, ((PL + "plugins/precision/precision.py",
                                                                      "_after_closure"),)),
    ("gradient-health monitor, every step (collect)", 2, (("src/monitor/gradient_health.py",
                                                           "on_before_optimizer_step"),)),
    ("gradient-health monitor, after the update (on_train_batch_end)", 1, (("src/monitor/gradient_health.py",
                                                                            "on_train_batch_end"),)),
    ("flush (host read, statistics, events; writes handed to a thread)", 2, (("src/monitor/gradient_health.py",
                                                                              "_flush"),)),
    ("self.log (Lightning's result collection)", 1, ((PL + "core/module.py", "log"),)),
    ("step-end metric bookkeeping (Lightning)", 1, ((PL + "trainer/connectors/logger_connector/logger_connector.py",
                                                     "on_batch_end"),)),
    ("progress bar, per batch", 1, ((PL + "callbacks/progress/rich_progress.py", "on_train_batch_end"),
                                    (PL + "callbacks/progress/tqdm_progress.py", "on_train_batch_end"),
                                    ("src/training/progress.py", "on_train_batch_end"))),
    ("logger: step metrics queued (written by a thread)", 1, (("src/tracking/logger.py", "log_metrics"),)),
    ("validation loops", 0, ((PL + "loops/evaluation_loop.py", "run"),)),
    ("checkpoint saving", 0, ((PL + "trainer/trainer.py", "save_checkpoint"),)),
    ("all MLflow client calls (run set-up, metrics, artifacts)", 0, (("mlflow/tracking/client.py", ""),)),
)


def cumulative(stats: pstats.Stats, file_suffix: str, name: str) -> float:
    """Seconds spent in the matching functions, callees included (recursion counted once, as cProfile does).

    An empty `name` matches every function of the file that no other function of the same file called.
    """
    total = 0.0
    for (file, _, func), (_, _, _, cum, callers) in stats.stats.items():  # type: ignore[attr-defined]
        if not file.endswith(file_suffix) and file != file_suffix:
            continue
        if name and func == name:
            total += cum
        elif not name and not any(c[0].endswith(file_suffix) for c in callers):
            total += cum
    return total


def calls(stats: pstats.Stats, file_suffix: str, name: str) -> int:
    return sum(v[1] for (f, _, fn), v in stats.stats.items() if f.endswith(file_suffix) and fn == name)  # type: ignore[attr-defined]


def short(file: str, line: int, func: str) -> str:
    for marker in ("site-packages/", str(ROOT) + "/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{func} ({file}:{line})"


def summarize(stats: pstats.Stats, wall_s: float, top: int) -> str:
    steps = calls(stats, "src/training/module.py", "training_step")
    per = 1000.0 / max(steps, 1)
    lines = [f"{steps} training steps, wall {wall_s:.1f} s under cProfile, peak RSS "
             f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB", "",
             f"{'part':64s} {'ms/step':>8s} {'s total':>8s}"]
    for label, depth, functions in PARTS:
        seconds = sum(cumulative(stats, f, n) for f, n in functions)
        lines.append(f"{'  ' * depth + label:64s} {seconds * per:8.2f} {seconds:8.2f}")
    lines += ["", f"top {top} functions by self time", f"{'function':96s} {'ms/step':>8s} {'calls/step':>10s}"]
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]  # type: ignore[attr-defined]
    for (file, line, func), (_, ncalls, tottime, _, _) in rows:
        lines.append(f"{short(file, line, func)[:96]:96s} {tottime * per:8.3f} {ncalls / max(steps, 1):10.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of `python -m src.train`")
    parser.add_argument("--top", type=int, default=20, help="functions listed by self time")
    parser.add_argument("--save", type=Path, help="write the raw cProfile data here")
    parser.add_argument("--keep-store", action="store_true", help="log into the usual store, not a throwaway one")
    args = parser.parse_args(argv)
    if not args.keep_store:
        uri = f"sqlite:///{Path(tempfile.mkdtemp(prefix='profile-')) / 'mlflow.db'}"
        migrate = f"from mlflow.tracking import MlflowClient; MlflowClient(tracking_uri={uri!r}).search_experiments()"
        subprocess.run([sys.executable, "-c", migrate], check=True, capture_output=True)
        os.environ["MLFLOW_TRACKING_URI"] = uri
    sys.argv = ["src.train", *args.overrides]
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    try:
        from src.train import main as train_main

        train_main()
    except SystemExit as exc:
        if exc.code:
            raise
    finally:
        profiler.disable()
    wall = time.perf_counter() - start
    if args.save:
        profiler.dump_stats(str(args.save))
    print("\n" + summarize(pstats.Stats(profiler), wall, args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
