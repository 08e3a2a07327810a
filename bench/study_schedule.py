"""What the long study blocks' instrument schedule costs: the same run with its instruments, without them, and
without the monitor, side by side.

    python -m bench.study_schedule                          # long_l1_adam (L1 1e-3 + Adam), 3,000 steps, 1 round
    python -m bench.study_schedule --block long_l2_sgd --arm l2_1e-3 --steps 5000 --rounds 2 --json out.json

The issue asks that the long LeNet-5 runs keep "the instruments on a schedule that stays within ~10% of the run's
cost". Each process is `python -m src.train experiment=study2_<block> +study/arm=<arm> trainer.max_steps=<steps>`
in three variants, run in turn within a round (the order rotated between rounds, so a change of the machine's
load hits all alike): `schedule` (the block's own monitor settings), `no instruments` (the same monitor with the
signal, unit-health, sharpness and relative-update instruments off: `*_every_n_steps=0`) and `no monitor`
(`monitor=off`, the block's monitor settings deleted with it). The cost of a run is its CPU seconds after the
first optimizer step starts (user + system of the process and its threads, so other processes' load does not
count), divided by the steps: ms of CPU a step.

Over `steps` the instruments fire as often as over the block's horizon when `steps` is a multiple of their
intervals (signal and units every 500, relative update every 1,000), except the sharpness probe (every 10,000,
and at step 0): it fires once in a short run, so the short run over-weights it and its overhead is an upper
bound of the long run's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench.default_run import FIRST_STEP, MEASURE

ROOT = Path(__file__).resolve().parents[1]
INSTRUMENTS_OFF = ("monitor.signal_every_n_steps=0", "monitor.units_every_n_steps=0",
                   "monitor.sharpness_every_n_steps=0", "monitor.rel_update_every_n_steps=0")


def variants(block: str) -> dict[str, tuple[str, ...]]:
    """The three variants' overrides. `monitor=off` alone would leave the block's own monitor settings without a
    monitor (refused by the config check), so they are deleted (`~monitor.<key>`) with it."""
    settings = yaml.safe_load((ROOT / "conf" / "experiment" / f"study2_{block}.yaml").read_text()).get("monitor", {})
    return {"schedule": (), "no instruments": INSTRUMENTS_OFF,
            "no monitor": ("monitor=off", *(f"~monitor.{key}" for key in settings))}


def measure(overrides: list[str], env: dict[str, str]) -> dict[str, float]:
    """One run: its wall s, total CPU s and CPU s when the first optimizer step started."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", MEASURE, sys.executable, "-c", FIRST_STEP, *overrides], cwd=ROOT,
                          env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    out = done.stdout + done.stderr
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(overrides)} failed ({done.returncode}):\n{out[-3000:]}")
    total = float(re.search(r"(?<![a-z_])cpu_s=([0-9.]+)", out).group(1))
    first = float(re.search(r"first_step_cpu_s=([0-9.]+)", out).group(1))
    return {"wall_s": wall, "cpu_s": total, "first_step_cpu_s": first}


def run(block: str, arm: str, steps: int, rounds: int) -> dict:
    """Every variant in every round; medians of ms of CPU a step after the first step, and the overheads."""
    overrides = variants(block)
    names = list(overrides)
    per: dict[str, list[float]] = {n: [] for n in names}
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT),
               "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db"}
        base = [f"experiment=study2_{block}", f"+study/arm={arm}", f"trainer.max_steps={steps}",
                f"hydra.run.dir={tmp}/run", "logger.experiment_name=bench"]
        for r in range(rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                m = measure([*base, *overrides[name]], env)
                per[name].append(1000.0 * (m["cpu_s"] - m["first_step_cpu_s"]) / steps)
                print(f"round {r} {name:>14}: {per[name][-1]:.2f} ms CPU a step ({m['wall_s']:.0f} s wall)",
                      flush=True)
            load.append(os.getloadavg()[0])
    ms = {n: round(statistics.median(v), 3) for n, v in per.items()}
    return {"block": block, "arm": arm, "steps": steps, "rounds": rounds, "ms_cpu_per_step": ms,
            "ms_cpu_per_step_rounds": {n: [round(x, 3) for x in v] for n, v in per.items()},
            "instruments_overhead": round(ms["schedule"] / ms["no instruments"] - 1.0, 4),
            "monitor_overhead": round(ms["schedule"] / ms["no monitor"] - 1.0, 4),
            "load_1min": [round(x, 2) for x in load]}


def table(result: dict) -> str:
    ms = result["ms_cpu_per_step"]
    lines = [f"{result['block']} {result['arm']}, {result['steps']} steps, {result['rounds']} round(s), "
             f"1-min load {result['load_1min']}", "| variant | ms CPU a step | × no instruments | × no monitor |",
             "|---|---|---|---|"]
    lines += [f"| {n} | {v:.2f} | {v / ms['no instruments']:.3f} | {v / ms['no monitor']:.3f} |" for n, v in ms.items()]
    lines.append(f"instruments on the block's schedule: {100 * result['instruments_overhead']:+.1f}% CPU a step "
                 f"(an upper bound: the sharpness probe fires once in {result['steps']} steps, every 10,000 in the "
                 f"run); the whole monitor: {100 * result['monitor_overhead']:+.1f}%")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--block", default="long_l1_adam", choices=["long_l1_adam", "long_l2_sgd"])
    parser.add_argument("--arm", default="l1_1e-3", help="an arm of the block (conf/study/arm/)")
    parser.add_argument("--steps", type=int, default=3000, help="optimizer steps per run (a multiple of 1,000)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    if not (ROOT / "conf" / "study" / "arm" / f"{args.arm}.yaml").exists():
        parser.error(f"--arm {args.arm}: no conf/study/arm/{args.arm}.yaml")
    if args.steps < 1000 or args.steps % 1000 or args.rounds < 1:
        parser.error("--steps: a positive multiple of 1,000 (the instruments' intervals); --rounds: at least 1")
    result = run(args.block, args.arm, args.steps, args.rounds)
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
