"""`python -m bench.module_cost`: where the project's module spends a LeNet-5 step beyond Lightning's floor.

The step table's `lightning` row is the bare step in Lightning's loop with nothing logged; its `module` row is
the project's `ClassificationModule` and logger. Between them are the module's own step work (the accuracy's
predictions, the windowed loss sums, the penalty's gradient hook), the step metrics it hands to Lightning on the
logged steps, and the logger's writer thread. This benchmark times the same fit (`bench/steps.py`, one torch
thread) three ways, interleaved:

- `lightning`: the floor (`fit_plain`);
- `module, no logger`: the module with `logger=False`. Lightning's result collection still runs: `self.log` is
  what fills `trainer.callback_metrics` (the run's final metrics and a sweep's objective), the progress bar and
  any `EarlyStopping` or checkpoint monitor, so the module cannot skip it;
- `module`: with the run's logger (its background writer).

In the two module fits a clock wraps Lightning's public `LightningModule.log` and the module's step-metrics hook
(`on_train_batch_end`, which calls `self.log` only on the logged steps): the table gives the milliseconds of one
`self.log` call, the calls a step, and what both cost a step (all steps, warm-up included, divide the sums).
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import time
from collections.abc import Iterator
from typing import Any

FITS = ("lightning", "module, no logger", "module")
CLOCKED = ("self.log", "step-metrics hook")


@contextlib.contextmanager
def clocked(methods: dict[str, tuple[type, str]]) -> Iterator[dict[str, list[float]]]:
    """Within the block, every call of each `(class, method name)` appends its duration (s) under its label;
    the methods are restored after it."""
    durations: dict[str, list[float]] = {label: [] for label in methods}
    originals = {label: getattr(cls, name) for label, (cls, name) in methods.items()}

    def timer(label: str, method: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                durations[label].append(time.perf_counter() - start)
        return timed

    for label, (cls, name) in methods.items():
        setattr(cls, name, timer(label, originals[label]))
    try:
        yield durations
    finally:
        for label, (cls, name) in methods.items():
            setattr(cls, name, originals[label])


def module_fit(net: Any, data: Any, run: Any, logger: Any) -> tuple[float, dict[str, list[float]]]:
    """One fit of the project's module (as the `module` mode builds it) with `logger` (False: none); returns
    (ms per measured step, {clocked label: call durations in s})."""
    import pytorch_lightning as pl

    from bench.steps import project_module, timed_fit
    from src.training.module import ClassificationModule

    module = project_module(net)
    methods = {"self.log": (pl.LightningModule, "log"),
               "step-metrics hook": (ClassificationModule, "on_train_batch_end")}
    with clocked(methods) as durations:
        ms = timed_fit(module, data, run, "cpu", "32-true", logger, [], log_every_n_steps=run.log_every)[0]
    return ms, durations


def measure(rounds: int, steps: int) -> tuple[dict[str, list[float]], dict[str, dict[str, list[float]]]]:
    """({fit: [ms per step of each round]}, {module fit: {clocked label: [ms per step of each round], "calls":
    [self.log calls per step of each round]}}); the fits in an order that alternates from round to round."""
    from bench.steps import ModelRun, ThrowawayStore, alternated, build_net, fit_plain, random_examples

    run = ModelRun("lenet5", None, warmup=20, steps=steps)
    net, data, store = build_net(run), random_examples(run), ThrowawayStore()
    times: dict[str, list[float]] = {fit: [] for fit in FITS}
    per_step: dict[str, dict[str, list[float]]] = {
        fit: {label: [] for label in (*CLOCKED, "calls")} for fit in FITS[1:]}
    for r in range(rounds):
        for fit in alternated(FITS, r):
            if fit == "lightning":
                times[fit].append(fit_plain(net, data, run, "cpu")[0])
                continue
            ms, durations = module_fit(net, data, run, store.logger() if fit == "module" else False)
            times[fit].append(ms)
            for label in CLOCKED:
                per_step[fit][label].append(sum(durations[label]) * 1000 / run.total)
            per_step[fit]["calls"].append(len(durations["self.log"]) / run.total)
        print(f"round {r + 1}/{rounds}: " + ", ".join(f"{f} {t[-1]:.2f} ms" for f, t in times.items()), flush=True)
    return times, per_step


def table(times: dict[str, list[float]], per_step: dict[str, dict[str, list[float]]]) -> list[str]:
    floor = statistics.median(times["lightning"])
    lines = ["| fit | ms per step (median) | ×lightning | self.log calls a step | self.log ms a step | "
             "step-metrics hook ms a step | rounds |", "|---|---|---|---|---|---|---|"]
    for fit, values in times.items():
        clocked_ms = [f"{statistics.median(per_step[fit][k]):.2f}" if fit in per_step else "" for k in
                      ("calls", *CLOCKED)]
        lines.append(f"| {fit} | {statistics.median(values):.2f} | ×{statistics.median(values) / floor:.2f} | "
                     f"{' | '.join(clocked_ms)} | {', '.join(f'{v:.2f}' for v in values)} |")
    calls, log_ms = per_step["module"]["calls"], per_step["module"]["self.log"]
    per_call = statistics.median([ms / c for ms, c in zip(log_ms, calls, strict=True) if c])
    excess = statistics.median(times["module"]) - floor
    rest = statistics.median(per_step["module"]["step-metrics hook"]) - statistics.median(log_ms)
    lines += ["", f"one self.log call: median {per_call:.2f} ms; the module over Lightning's floor: median "
              f"{excess:.2f} ms a step, of which self.log {statistics.median(log_ms):.2f} ms and the rest of the "
              f"step-metrics hook {rest:.2f} ms"]
    return lines


def main(argv: list[str] | None = None) -> int:
    from bench.cli import lenet5_fit_args

    args = lenet5_fit_args(__doc__, argv)
    times, per_step = measure(args.rounds, args.steps)
    print(f"LeNet-5, batch 32, {args.steps} measured steps, one torch thread, {args.rounds} interleaved rounds, "
          "logged every 10 steps")
    print("\n".join(table(times, per_step)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
