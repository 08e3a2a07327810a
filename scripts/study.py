#!/usr/bin/env python
"""Run the study's blocks one after another, each a parallel sweep, then write its report.

    python scripts/study.py                      # every conf/experiment/study_*.yaml, 2 jobs each (make study)
    python scripts/study.py --blocks lenet5_dying vgg19_dying --jobs 2
    python scripts/study.py --scale gpu          # the same study at GPU scale (see below)
    python scripts/study.py --report-only        # the report of what the store holds

Each block is `python -m src.train -m experiment=study_<block> hydra/launcher=joblib
hydra.launcher.n_jobs=<jobs>` with one torch thread per job (OMP_NUM_THREADS=1). The wall time of every
block and the machine's 1-minute load average (sampled every 10 s: on a shared machine the wall time
includes other people's work) go to `<out>/timing.json` and into the report's header, with the CPU
seconds the blocks used: CPU-s / jobs is the wall time the study would take on idle cores.

`--scale gpu`: full width (VGG-19 and ResNet-152 `model.width=1`), CIFAR-10 (`data=cifar10`, downloads),
`trainer=gpu`, 20,000 steps per run (`--steps` to change it), into the MLflow experiment `study_gpu` and
`reports/study_gpu/`. One job at a time unless `--jobs` says otherwise (one per GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GPU = {"all": ["data=cifar10", "trainer=gpu"], "vgg19": ["model.width=1.0"], "resnet152": ["model.width=1.0"]}


PRIORITY = ["lenet5_", "vgg19_dying", "vgg19_exploding", "resnet152_exploding", "vgg19_vanishing",
            "resnet152_vanishing", "vgg19_", "resnet152_"]


def blocks() -> list[str]:
    """Every study block, the cheap and most telling ones first (a study cut short still answers the most):
    LeNet-5's four, the first study's dead VGG-19, the exploding nets, the vanishing ones, the healthy references."""
    names = sorted(p.stem.removeprefix("study_") for p in (ROOT / "conf" / "experiment").glob("study_*.yaml"))
    return sorted(names, key=lambda n: next((i for i, p in enumerate(PRIORITY) if n.startswith(p)), len(PRIORITY)))


def overrides(block: str, args: argparse.Namespace) -> list[str]:
    extra = [f"logger.experiment_name={args.experiment}"]
    if args.scale == "gpu":
        extra += GPU["all"] + GPU.get(block.split("_")[0], []) + [f"trainer.max_steps={args.steps}"]
    return extra + args.overrides


def cpu_seconds() -> float:
    """CPU time (user + system) of every finished child process and its descendants (the sweep's workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class LoadSampler(threading.Thread):
    """The 1-minute load average every 10 s while the study runs."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(10.0):
            self.samples.append(os.getloadavg()[0])


def run_blocks(args: argparse.Namespace) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    sampler = LoadSampler()
    sampler.start()
    timing = {"jobs_per_block": args.jobs, "cpus": os.cpu_count(), "blocks": {}}
    start = time.time()
    for block in args.blocks or blocks():
        cmd = [sys.executable, "-m", "src.train", "-m", f"experiment=study_{block}", "hydra/launcher=joblib",
               f"hydra.launcher.n_jobs={args.jobs}", *overrides(block, args)]
        print("$ " + " ".join(cmd[1:]), flush=True)
        t0, cpu0 = time.time(), cpu_seconds()
        rc = subprocess.run(cmd, cwd=ROOT, env=env).returncode  # a failed job never stops the study
        timing["blocks"][block] = {"wall_s": round(time.time() - t0, 1), "cpu_s": round(cpu_seconds() - cpu0, 1),
                                   "rc": rc}
    sampler.stop.set()
    timing["wall_s"] = round(time.time() - start, 1)
    timing["cpu_s"] = round(sum(b["cpu_s"] for b in timing["blocks"].values()), 1)
    timing["load_mean"] = round(sum(sampler.samples) / len(sampler.samples), 2) if sampler.samples else None
    timing["load_max"] = max(sampler.samples, default=None)
    return timing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", nargs="+", help="study blocks to run (default: all of conf/experiment/study_*)")
    parser.add_argument("--jobs", type=int, help="parallel jobs per block (default 2; 1 with --scale gpu)")
    parser.add_argument("--scale", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--steps", type=int, default=20000, help="steps per run with --scale gpu")
    parser.add_argument("--experiment", help="MLflow experiment (default: study, or study_gpu)")
    parser.add_argument("--out", type=Path, help="report folder (default: docs/seed_study, or reports/study_gpu)")
    parser.add_argument("--report-only", action="store_true", help="write the report of the runs in the store")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every job")
    args = parser.parse_args(argv)
    gpu = args.scale == "gpu"
    args.jobs = args.jobs or (1 if gpu else 2)
    args.experiment = args.experiment or ("study_gpu" if gpu else "study")
    out = args.out or ROOT / ("reports/study_gpu" if gpu else "docs/seed_study")
    out.mkdir(parents=True, exist_ok=True)
    note = ""
    if not args.report_only:
        timing = run_blocks(args)
        (out / "timing.json").write_text(json.dumps(timing, indent=1))
    if (out / "timing.json").exists():
        t = json.loads((out / "timing.json").read_text())
        note = (f"Study wall time {t['wall_s'] / 60:.1f} min for {len(t['blocks'])} blocks, {t['jobs_per_block']} "
                f"jobs at a time on {t['cpus']} CPUs; 1-min load average mean {t['load_mean']}, max {t['load_max']}; "
                f"{t['cpu_s']:.0f} CPU-s in all, i.e. {t['cpu_s'] / t['jobs_per_block'] / 60:.1f} min on "
                f"{t['jobs_per_block']} idle cores "
                f"(`timing.json`; per block: " + ", ".join(f"{b} {v['wall_s']:.0f} s" for b, v in t["blocks"].items())
                + ").")
    report = [sys.executable, str(ROOT / "scripts" / "report.py"), "--study", args.experiment, "--out", str(out),
              "--note", note]
    return subprocess.run(report, cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main())
