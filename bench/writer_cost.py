"""`python -m bench.writer_cost`: what the background writers' work costs the training thread.

The monitor's flushes and the logger's step metrics are written on background threads
(`src/background.py`): record parts appended and uploaded, MLflow `log_batch` rows sent. The threads keep
the store's latency off the training step, but their work is Python (MLflow's store and SQLAlchemy's ORM
build each row) and holds the interpreter lock while it runs, so it is not free on the training thread.
This benchmark times the same LeNet-5 fit (`bench/steps.py`, one torch thread) three ways, interleaved:

- `module`: the project's module and logger, no monitor (its logger's writer as it is);
- `monitor, writers as they are`: plus the monitor's statistics (the `monitor` mode);
- `monitor, writers' work dropped`: the same fit, with every background writer's work replaced by nothing
  (`writes_dropped`: no part, no row, no upload; the training thread does exactly what it did; the run-end
  summary, which the training thread writes itself after the clock stops, is still written).

The difference between the last two is the writers' cost to the training step; it is a measurement aid,
not a setting (a run without its rows would lose them).

It also times what moving the writes into a process of their own would cost at start: a fresh interpreter
that imports the project's client, opens the same store and makes one write (`process_start_cpu`), the CPU
time such a process spends before its first row lands, which every run would pay.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import time
from collections.abc import Iterator
from typing import Any

MODES = ("module", "monitor, writers as they are", "monitor, writers' work dropped")


@contextlib.contextmanager
def writes_dropped() -> Iterator[None]:
    """Every `BackgroundWriter` (the monitor's and the logger's) takes its submissions and writes nothing."""
    from src.background import BackgroundWriter

    take, send = BackgroundWriter._take, BackgroundWriter._send_rows
    BackgroundWriter._take = lambda self, output: None  # type: ignore[method-assign]
    BackgroundWriter._send_rows = lambda self: setattr(self, "_sent_at", time.monotonic())  # type: ignore[method-assign]
    try:
        yield
    finally:
        BackgroundWriter._take, BackgroundWriter._send_rows = take, send  # type: ignore[method-assign]


PROCESS_START = """
import sys
from src.tracking.client import client, log_batch
log_batch(client(sys.argv[1]), sys.argv[2], metrics=[("bench/process_start", 1.0, 0)])
"""


def process_start_cpu(store: Any, repeats: int = 3) -> list[float]:
    """CPU seconds (user + system) of a fresh interpreter importing the project's client and writing one row
    into a run of `store` (a `ThrowawayStore`), once per repeat."""
    import resource
    import subprocess

    from src.paths import PROJECT_ROOT

    run_id = store.client.create_run(store.experiment_id).info.run_id
    seconds = []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, "-c", PROCESS_START, store.uri, run_id], cwd=PROJECT_ROOT, check=True,
                       capture_output=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        seconds.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return seconds


def measure(rounds: int, steps: int) -> dict[str, list[float]]:
    """{mode: [ms per step of each round]}, the modes in an order that alternates from round to round."""
    from bench.modes import MODES as STEP_MODES
    from bench.steps import ModelRun, ThrowawayStore, alternated, build_net, fit, random_examples

    run = ModelRun("lenet5", None, warmup=20, steps=steps)
    net, data, store = build_net(run), random_examples(run), ThrowawayStore()
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    for r in range(rounds):
        for mode in alternated(MODES, r):
            callbacks = STEP_MODES["module" if mode == "module" else "monitor"](run.log_every)
            dropped = writes_dropped() if mode == MODES[2] else contextlib.nullcontext()
            with dropped:
                times[mode].append(fit(net, data, run, callbacks, store, "cpu")[0])
        print(f"round {r + 1}/{rounds}: " + ", ".join(f"{m} {t[-1]:.2f} ms" for m, t in times.items()), flush=True)
    return times


def table(times: dict[str, list[float]]) -> list[str]:
    base = statistics.median(times["module"])
    lines = ["| fit | ms per step (median) | ×module | rounds |", "|---|---|---|---|"]
    for mode, values in times.items():
        spread = ", ".join(f"{v:.2f}" for v in values)
        lines.append(f"| {mode} | {statistics.median(values):.2f} | ×{statistics.median(values) / base:.2f} | "
                     f"{spread} |")
    paired = [a - b for a, b in zip(times[MODES[1]], times[MODES[2]], strict=True)]  # same round, same load
    lines += ["", "the writers' work on the training step (each round's difference): median "
              f"{statistics.median(paired):.2f} ms, {min(paired):.2f}-{max(paired):.2f} ms; "
              f"the monitor over the module: median {statistics.median(times[MODES[1]]) - base:.2f} ms"]
    return lines


def main(argv: list[str] | None = None) -> int:
    from bench.cli import lenet5_fit_args

    args = lenet5_fit_args(__doc__, argv)
    times = measure(args.rounds, args.steps)
    print(f"LeNet-5, batch 32, {args.steps} measured steps, one torch thread, {args.rounds} interleaved rounds")
    print("\n".join(table(times)))
    from bench.steps import ThrowawayStore

    start = process_start_cpu(ThrowawayStore())
    print(f"a writer process of its own would start with {statistics.median(start):.2f} CPU-s (median of "
          f"{len(start)}: {', '.join(f'{s:.2f}' for s in start)}): a fresh interpreter importing the client and "
          "writing one row")
    return 0


if __name__ == "__main__":
    sys.exit(main())
