"""`python scripts/gpu_check.py`: what a GPU machine must show before the monitor's cost claims hold there.

1. No host synchronization between flushes: the monitor (and every `monitor+<instrument>` mode) trains
   ResNet-152 with its non-flush batch hooks under `torch.cuda.set_sync_debug_mode("error")`, in fp32,
   bf16-mixed and 16-mixed (`bench/sync.py`).
2. The monitor's overhead on ResNet-152 and VGG-19 at width 1, batch 128, in the same three precisions: the
   interleaved step table of `bench/steps.py` (ms/step and ratio to the bare loop; compare `monitor`
   with `module`).
3. fp16 (`16-mixed`): the skipped-step count of a ResNet-152 run as the monitor logs it
   (`amp/skipped_steps`, when this monitor version logs it) and as the GradScaler's scale drops tell it;
   the two must agree.

It takes about 4-5 minutes on one H100/H200 (an estimate from the step counts: it has not run on a GPU
yet). Without CUDA it says so and exits 0, having measured nothing; `--cpu` runs the same code on the CPU
at tiny sizes to check that the script itself works: part 1 on the first of `--models` under the CPU
emulation of the sync debugger (`bench/host_reads.py`), part 3 skipped. Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import torch

PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")
FULL = {"resnet152": (1.0, 5, 30, 10), "vgg19": (1.0, 5, 30, 10)}  # width, warm-up, measured steps, log_every
TINY = {"resnet152": (0.0625, 1, 2, 2), "vgg19": (0.0625, 1, 2, 2)}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu", action="store_true", help="dry run on the CPU, tiny sizes, CUDA-only checks skipped")
    parser.add_argument("--models", nargs="+", choices=list(FULL), default=list(FULL))
    parser.add_argument("--repeats", type=int, help="interleaved rounds of all modes (default 3; --cpu 1)")
    parser.add_argument("--batch-size", type=int, help="default 128; --cpu 8")
    return parser.parse_args(argv)


def check_syncs(modes: dict[str, Any], model: str, batch_size: int, tiny: bool, emulate: bool) -> bool:
    """Part 1: every monitor mode trains `model` for 12 steps (two flushes) with guarded hooks, per precision
    (`emulate`: on the CPU, under `bench/host_reads.py`'s emulation of CUDA's sync debug mode)."""
    from bench.steps import ModelRun
    from bench.sync import check_host_reads, report_lines

    run = ModelRun(model, 0.0625 if tiny else 1.0, 2, 10, batch_size=batch_size, log_every=5)
    results = check_host_reads(run, modes, PRECISIONS, "cpu" if emulate else "cuda", emulate)
    how = "the CPU emulation of sync debug mode" if emulate else "set_sync_debug_mode('error')"
    print("\n".join(report_lines(results, how)))
    return all(error is None for *_, error in results)


def count_skipped_steps(batch_size: int, tiny: bool) -> bool:
    """Part 3: a 16-mixed ResNet-152 run; the monitor's `amp/skipped_steps` against the scaler's scale drops."""
    from bench.modes import monitor
    from bench.steps import ModelRun, ThrowawayStore, build_net, fit, random_examples
    from bench.sync import ScaleWatch

    run = ModelRun("resnet152", 0.0625 if tiny else 1.0, 0, 30, batch_size=batch_size)
    store, watch = ThrowawayStore(), ScaleWatch()
    _, trainer = fit(build_net(run), random_examples(run), run, [*monitor()(run.log_every), watch], store, "cuda",
                     "16-mixed")
    logged = store.client.get_run(trainer.logger.run_id).data.metrics.get("amp/skipped_steps")
    print(f"  GradScaler: {watch.skipped} of {run.steps} steps skipped (scale now {watch.scale:g})")
    if logged is None:
        print("  monitor: logs no amp/skipped_steps (this monitor version does not count them); scaler count above")
        return True
    agree = int(logged) == watch.skipped
    print(f"  monitor: amp/skipped_steps = {int(logged)} ({'agrees' if agree else 'DISAGREES'} with the scaler)")
    return agree


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    cuda = torch.cuda.is_available()
    if not cuda and not args.cpu:
        print("no CUDA device (torch.cuda.is_available() is False): the GPU check needs one and measured nothing. "
              "`--cpu` runs its code on the CPU at tiny sizes.")
        return 0
    from bench.cli import quiet_fits
    from bench.modes import BARE, MODES
    from bench.steps import ModelRun, measure
    from bench.table import rows

    quiet_fits()
    tiny = args.cpu
    device = "cpu" if args.cpu else "cuda"
    batch_size = args.batch_size or (8 if tiny else 128)
    repeats = args.repeats or (1 if tiny else 3)
    monitors = {name: f for name, f in MODES.items() if name.startswith("monitor") and f is not None}
    where = "cpu (dry run)" if args.cpu else torch.cuda.get_device_name(0)
    print(f"GPU check on {where}, torch {torch.__version__}, batch {batch_size}, {repeats} interleaved repeats")
    ok = True
    print("\n1. host synchronizations between flushes" + (" (CPU emulation)" if args.cpu else ""))
    ok &= check_syncs(monitors, args.models[0] if args.cpu else "resnet152", batch_size, tiny, emulate=args.cpu)
    print("\n2. step time, ms/step, median ×ratio to bare (fastest-slowest repeat); the monitor costs monitor/module")
    setting = TINY if tiny else FULL
    runs = [ModelRun(m, *setting[m][:3], batch_size=batch_size, log_every=setting[m][3]) for m in args.models]
    timed = {name: f for name, f in monitors.items() if not name.endswith("@1")}  # every-step probes: CPU bench only
    modes = {BARE: None, "module": MODES["module"], **timed}
    for precision in PRECISIONS:
        print(f"\n{precision}")
        print("\n".join(rows([r for r in measure(runs, modes, repeats, device, precision)])))
    print("\n3. fp16 skipped steps (16-mixed, ResNet-152)")
    if cuda and not args.cpu:
        ok &= count_skipped_steps(batch_size, tiny)
    else:
        print("  skipped: needs CUDA")
    print("\nall checks passed" if ok else "\nSOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
