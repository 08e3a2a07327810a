"""`python scripts/bench_monitor.py`: the step-time table of every mode and the default run's wall time.

    python scripts/bench_monitor.py                    # full: LeNet-5, VGG-19, ResNet-152 at width 1; 3 default runs
    python scripts/bench_monitor.py --quick            # smoke test: small widths, a few steps, one short default run
    python scripts/bench_monitor.py --models lenet5 --repeats 5 --runs 0 --json out.json
    python scripts/bench_monitor.py --compare          # also Lightning's grad_norm and a .item() loop
    python scripts/bench_monitor.py --baseline ../main # the default run of another checkout in the same rounds

Modes are in `bench/modes.py` (an instrument adds its `monitor+<instrument>` mode there); how a step
is timed is in `bench/steps.py`, the default run in `bench/default_run.py`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FULL = {  # model -> (width, warm-up steps, measured steps, log_every): flushes fall inside the measured steps
    "lenet5": (None, 10, 200, 10),
    "vgg19": (1.0, 2, 8, 10),
    "resnet152": (1.0, 1, 4, 5),
}
QUICK = {"lenet5": (None, 2, 4, 2), "vgg19": (0.0625, 1, 2, 3), "resnet152": (0.0625, 1, 2, 3)}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small widths and few steps: checks that it all runs")
    parser.add_argument("--width", type=float, help="channel width of VGG-19 and ResNet-152 (default: 1; quick 1/16)")
    parser.add_argument("--models", nargs="+", choices=list(FULL), default=list(FULL))
    parser.add_argument("--modes", nargs="+", help="a subset of the registered modes (default: all)")
    parser.add_argument("--compare", action="store_true", help="add Lightning's grad_norm and a .item() loop")
    parser.add_argument("--repeats", type=int, help="interleaved rounds of all modes (default 3; quick 1)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--runs", type=int, help="default runs timed, median reported (default 3; quick 1; 0 = none)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads, here and in the default runs "
                        "(0 = torch's default)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--baseline", type=Path, help="a checkout (the code before a change) whose default run is "
                        "timed in the same rounds as this one's")
    parser.add_argument("--ops", action="store_true", help="count the operators each monitor mode adds per flush "
                        "window of ResNet-152 (bench/ops.py; ~1 min per mode on 2 cores)")
    parser.add_argument("--json", type=Path, help="write {model: {mode: ms_per_step}} and the default run here")
    return parser.parse_args(argv)


def lenet5_fit_args(description: str, argv: list[str] | None) -> argparse.Namespace:
    """`--rounds` and `--steps` of a benchmark that times LeNet-5 fits in interleaved rounds (`bench.writer_cost`,
    `bench.module_cost`), with the process set up as they time it: one torch thread, no per-fit banners."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=1000, help="measured steps per fit (after 20 warm-up steps)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    quiet_fits()
    return args


def quiet_fits() -> None:
    """No per-fit banners between the rows (`max_steps reached`, no validation loop)."""
    import warnings

    for name in ("pytorch_lightning", "pytorch_lightning.utilities.rank_zero", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="You defined a `validation_step` but have no `val_dataloader`")
    from src.lifecycle.console import quiet

    quiet()


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # before torch starts its thread pool
    sys.path.insert(0, str(ROOT))
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    quiet_fits()
    from bench.default_run import QUICK as QUICK_RUN
    from bench.default_run import time_default_runs
    from bench.modes import COMPARISONS, MODES, check_names
    from bench.steps import ModelRun, measure
    from bench.table import default_run_figures, default_run_lines, figures, rows, write_json

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    modes = {m: MODES[m] for m in (args.modes or MODES)}
    modes.update(COMPARISONS if args.compare else {})
    check_names(modes)
    setting = dict(QUICK if args.quick else FULL)
    if args.width:  # a smaller VGG-19 / ResNet-152 on a slow machine (LeNet-5 has no width)
        setting.update({m: (args.width, *setting[m][1:]) for m in ("vgg19", "resnet152")})
    runs = [ModelRun(m, *setting[m][:3], batch_size=args.batch_size, log_every=setting[m][3]) for m in args.models]
    repeats = args.repeats or (1 if args.quick else 3)
    count = args.runs if args.runs is not None else (1 if args.quick else 3)
    load_start = os.getloadavg()[0]
    where = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
    print(f"torch {torch.__version__}, {where}, {torch.get_num_threads()} threads, load {load_start:.1f} (1 min), "
          f"{repeats} interleaved repeats; ms per step, median ×ratio to bare (fastest-slowest repeat)", flush=True)
    results = []
    for run, times in measure(runs, modes, repeats, device):
        results.append((run, times))
        print("\n".join(rows([(run, times)])[-1:]), flush=True)  # each model's row as soon as it is done
    overrides = QUICK_RUN if args.quick else ()
    default = time_default_runs(count, overrides, args.threads, args.baseline) if count else None
    ops = None
    if args.ops:
        from bench.ops import count_ops, ops_lines, ops_run

        counted = {"monitor": MODES["monitor"]}  # the reference of every excess
        counted.update({m: f for m, f in modes.items() if m.startswith("monitor+") and "@" not in m and f is not None})
        ops = count_ops(ops_run(), counted)
    load_end = os.getloadavg()[0]
    print("\n" + "\n".join(rows(results)))
    if default is not None:
        print("\n" + "\n".join(default_run_lines(default_run_figures(default), overrides)))
    if ops is not None:
        print("\nResNet-152, operators per flush window (one instrument step, one flush; bench/ops.py)\n")
        print("\n".join(ops_lines(ops)))
    print(f"load {load_start:.1f} at the start, {load_end:.1f} at the end (1-minute average)")
    if args.json:
        context = {"load_1min_start": load_start, "load_1min_end": load_end, "threads": torch.get_num_threads(),
                   "repeats": repeats}
        write_json(args.json, figures(results, default, context, ops))
    return 0
