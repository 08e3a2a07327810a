#!/usr/bin/env python
"""Run the study's blocks, then write its report.

    python scripts/study.py                      # the second edition: every conf/experiment/study2_*.yaml (make study)
    python scripts/study.py --blocks late_dying bn_l2_vgg19 --jobs 2
    python scripts/study.py --edition 1          # the first edition: every conf/experiment/study_*.yaml
    python scripts/study.py --scale gpu          # the same study at GPU scale (see below)
    python scripts/study.py --report-only        # the report of what the store holds
    python scripts/study.py --blocks long_l2_sgd --arms l2_1e-3 l2_1e-4 --seeds 1   # a subset of a block's jobs

The second edition (`scripts/study_queue.py`) runs every job of its blocks as its own process, `--jobs` at a
time, and is resumable: a job whose run finished is skipped, one that was stopped (KILLED: a signal, or closed
`lost` by the reaper) continues its own run by `resume=<id>`. Stop it with Ctrl-C or SIGTERM and run it again.
Its blocks' wall and CPU times go to `<out>/timing.json` (the times of the calls that ran them, summed).

In the first edition each block is `python -m src.train -m experiment=study_<block> hydra/launcher=joblib
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

import study_queue  # scripts/study_queue.py, beside this file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's `src`
GPU = {"all": ["data=cifar10", "trainer=gpu"], "vgg19": ["model.width=1.0"], "resnet152": ["model.width=1.0"]}


PRIORITY2 = ["width_resnet152", "rescued_lenet5_exploding", "late_dying", "bn_l2_vgg19", "rescued_vgg19_dying",
             "resnet152_plain_long", "long_l2_sgd", "long_l1_adam"]  # cheap and telling first, the long runs last
PRIORITY = ["lenet5_", "vgg19_dying", "vgg19_exploding", "resnet152_exploding", "vgg19_vanishing",
            "resnet152_vanishing", "vgg19_", "resnet152_"]


def blocks() -> list[str]:
    """Every study block, the cheap and most telling ones first (a study cut short still answers the most):
    LeNet-5's four, the first study's dead VGG-19, the exploding nets, the vanishing ones, the healthy references."""
    names = sorted(p.stem.removeprefix("study_") for p in (ROOT / "conf" / "experiment").glob("study_*.yaml"))
    return sorted(names, key=lambda n: next((i for i, p in enumerate(PRIORITY) if n.startswith(p)), len(PRIORITY)))


def blocks2() -> list[str]:
    """The second edition's blocks in the order they run (`PRIORITY2`, then any other by name)."""
    names = study_queue.block_names()
    return sorted(names, key=lambda n: (PRIORITY2.index(n) if n in PRIORITY2 else len(PRIORITY2), n))


def overrides(block: str, args: argparse.Namespace) -> list[str]:
    extra = [f"logger.experiment_name={args.experiment}"]
    if args.scale == "gpu":
        extra += GPU["all"] + GPU.get(block.split("_")[0], []) + [f"trainer.max_steps={args.steps}"]
    return extra + args.overrides


def gpu_overrides(block: str) -> list[str]:
    """The second edition at GPU scale: CIFAR-10, the GPU trainer, full width; each block keeps its own horizon."""
    model = next((m for m in ("vgg19", "resnet152") if m in block), None)
    if block.startswith("width_"):  # its arms are the widths
        model = None
    return GPU["all"] + (GPU[model] if model else [])


def run_edition2(args: argparse.Namespace) -> dict:
    """Every unfinished job of the second edition's blocks (resumable); the timing of this call, merged with the
    timing of earlier calls in `<out>/timing.json` (a block run over two calls has the sum of its times)."""
    from src.tracking.client import client

    names = args.blocks or blocks2()
    extra = args.overrides
    if args.scale == "gpu":  # one block at a time: each has its own model
        timing = {"blocks": {}, "jobs": {}}
        for block in names:
            part = study_queue.run_queue(client(), [block], args.jobs, args.experiment, gpu_overrides(block) + extra)
            timing["blocks"].update(part["blocks"])
        return timing
    return study_queue.run_queue(client(), names, args.jobs, args.experiment, extra, args.retry_failed,
                                 args.arms, args.seeds)


def merge_timing(old: dict, new: dict, jobs: int) -> dict:
    blocks = {**old.get("blocks", {})}
    for block, t in new["blocks"].items():
        before = blocks.get(block, {"wall_s": 0.0, "cpu_s": 0.0})
        blocks[block] = {k: round(before.get(k, 0.0) + t.get(k, 0.0), 1) for k in ("wall_s", "cpu_s")}
    return {"jobs_per_block": jobs, "cpus": os.cpu_count(), "blocks": blocks,
            "wall_s": round(old.get("wall_s", 0.0) + new.get("wall_s", 0.0), 1),
            "cpu_s": round(sum(b["cpu_s"] for b in blocks.values()), 1),
            "load_mean": new.get("load_mean"), "load_max": new.get("load_max")}


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


def prose_path(out: Path) -> Path:
    """docs/seed_study.md for the study's own report folder; `<out>/seed_study.md` for any other `--out` (a report
    written elsewhere leaves the committed prose alone)."""
    return ROOT / "docs" / "seed_study.md" if out.resolve() == (ROOT / "docs" / "seed_study2").resolve() \
        else out / "seed_study.md"


def refuse_unknown_jobs(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """`--arms` / `--seeds` that no chosen block has: one clear error before anything runs (not a silent no-op)."""
    if args.edition == 1 and (args.arms or args.seeds):
        parser.error("--arms/--seeds: only the second edition (--edition 2) runs jobs one by one")
    if not (args.arms or args.seeds):
        return
    jobs = [job for block in (args.blocks or blocks2()) for job in study_queue.block_jobs(block)]
    for flag, asked, known in (("--arms", args.arms, {j.arm for j in jobs}), ("--seeds", args.seeds,
                                                                            {j.seed for j in jobs})):
        unknown = sorted(set(asked or []) - known)
        if unknown:
            parser.error(f"{flag} {' '.join(unknown)}: not in the blocks' jobs; allowed: {', '.join(sorted(known))}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--edition", type=int, choices=[1, 2], default=2, help="2: study2_* (default); 1: study_*")
    parser.add_argument("--blocks", nargs="+", help="study blocks to run (default: all of the edition's)")
    parser.add_argument("--arms", nargs="+", help="second edition: run only these arms of the blocks")
    parser.add_argument("--seeds", nargs="+", help="second edition: run only these seeds of the blocks")
    parser.add_argument("--retry-failed", action="store_true", help="second edition: resume FAILED runs too")
    parser.add_argument("--jobs", type=int, help="parallel jobs per block (default 2; 1 with --scale gpu)")
    parser.add_argument("--scale", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--steps", type=int, default=20000, help="steps per run with --scale gpu")
    parser.add_argument("--experiment", help="MLflow experiment (default: study, or study_gpu)")
    parser.add_argument("--out", type=Path, help="report folder (default: docs/seed_study, or reports/study_gpu)")
    parser.add_argument("--report-only", action="store_true", help="write the report of the runs in the store")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every job")
    args = parser.parse_args(argv)
    refuse_unknown_jobs(parser, args)
    gpu = args.scale == "gpu"
    args.jobs = args.jobs or (1 if gpu else 2)
    first = args.edition == 1
    args.experiment = args.experiment or ("study_gpu" if gpu else "study") + ("" if first else "2")
    out = args.out or ROOT / ("reports/study_gpu" if gpu else "docs/seed_study") if first else \
        args.out or ROOT / ("reports/study2_gpu" if gpu else "docs/seed_study2")
    out.mkdir(parents=True, exist_ok=True)
    note = ""
    if not args.report_only and first:
        timing = run_blocks(args)
        (out / "timing.json").write_text(json.dumps(timing, indent=1))
    elif not args.report_only:
        sampler = LoadSampler()
        sampler.start()
        start = time.time()
        part = run_edition2(args)
        sampler.stop.set()
        part.update(wall_s=round(time.time() - start, 1),
                    load_mean=round(sum(sampler.samples) / len(sampler.samples), 2) if sampler.samples else None,
                    load_max=max(sampler.samples, default=None))
        old = json.loads((out / "timing.json").read_text()) if (out / "timing.json").exists() else {}
        (out / "timing.json").write_text(json.dumps(merge_timing(old, part, args.jobs), indent=1))
        if part.get("interrupted"):
            print("Stopped: run the same command again to continue the stopped runs.")
            return 130
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
    rc = subprocess.run(report, cwd=ROOT).returncode
    if rc or first or gpu:
        return rc
    prose = [sys.executable, str(ROOT / "scripts" / "study_prose.py"), "--experiment", args.experiment,
             "--out", str(out), "--prose", str(prose_path(out))]
    return subprocess.run(prose, cwd=ROOT).returncode  # the readings of the long blocks and the prose


if __name__ == "__main__":
    sys.exit(main())
