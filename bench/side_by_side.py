"""`python -m bench.side_by_side --baseline PATH --json out.json`: this checkout and another (the code before a
change) measured in the same rounds, for a before/after table whose ratios share the machine's load.

- **Steps**: each round runs `scripts/bench_monitor.py --repeats 1` (LeNet-5, one torch thread) of each checkout
  in a fresh process, in an order rotated from round to round; a mode's figure is the median over rounds of its
  ratio to that process's own `bare` (and its ms per step).
- **The default run**: `bench/default_run.py` with the baseline in the same rounds (wall and CPU ratios to a
  bare process of the same steps, CPU to the first step, imports).
- **Operators** per flush window of ResNet-152 (`bench/ops.py`, run against each checkout's `src`): exact
  counts, independent of the load.

`uptime`'s load is recorded before and after each part. `python -m bench.docs out.json` writes the tables into
`docs/performance.md`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEP_MODES = ("bare", "lightning", "module", "monitor", "monitor+signal", "monitor+units", "monitor+sharpness",
              "monitor+forensics", "monitor+all")
OPS_MODES = ("monitor", "monitor+signal", "monitor+units", "monitor+forensics", "monitor+all")


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def checkout_env(path: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(path), "OMP_NUM_THREADS": "1"}
    env.pop("GRADREG_RUN_ID", None)
    return env


def registered_modes(path: Path) -> set[str]:
    """The step modes the checkout at `path` registers (an older checkout may lack a newer mode)."""
    code = "from bench.modes import MODES; print(' '.join(MODES))"
    done = subprocess.run([sys.executable, "-c", code], cwd=path, env=checkout_env(path), capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{path}: {done.stderr[-3000:]}")
    return set(done.stdout.split())


def step_round(path: Path, modes: tuple[str, ...]) -> dict[str, float]:
    """One interleaved repeat of `modes` by the checkout at `path`: {mode: ms per step}."""
    out = Path(tempfile.mkdtemp(prefix="side-")) / "steps.json"
    cmd = [sys.executable, "scripts/bench_monitor.py", "--models", "lenet5", "--repeats", "1", "--runs", "0",
           "--threads", "1", "--modes", *modes, "--json", str(out)]
    done = subprocess.run(cmd, cwd=path, env=checkout_env(path), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{path}: {done.stderr[-3000:]}")
    return json.loads(out.read_text())["lenet5"]


def count_ops_of(path: Path, modes: tuple[str, ...]) -> dict[str, dict[str, int]]:
    """`bench/ops.py` of this checkout against the `src` (and `bench` helpers) of the checkout at `path`."""
    code = ("import json, runpy, sys\n"
            "from bench.cli import quiet_fits\n"
            "quiet_fits()\n"
            "from bench.modes import MODES\n"
            f"ops = runpy.run_path({str(ROOT / 'bench' / 'ops.py')!r})\n"
            f"counts = ops['count_ops'](ops['ops_run'](), {{m: MODES[m] for m in {list(modes)!r}}})\n"
            "print('OPS=' + json.dumps(counts))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=path, env=checkout_env(path), capture_output=True,
                          text=True)
    line = next((x for x in done.stdout.splitlines() if x.startswith("OPS=")), None)
    if line is None:
        raise RuntimeError(f"{path}: {done.stderr[-3000:]}")
    return json.loads(line[4:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, required=True, help="the checkout to compare with")
    parser.add_argument("--rounds", type=int, default=5, help="step rounds per checkout")
    parser.add_argument("--runs", type=int, default=3, help="default-run rounds (0 = none)")
    parser.add_argument("--no-ops", action="store_true", help="skip the operator counts")
    parser.add_argument("--ops-only", action="store_true", help="only the operator counts (exact, any load)")
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    checkouts = {"after": ROOT, "before": args.baseline.resolve()}
    if args.ops_only:
        args.json.write_text(json.dumps({"ops": {n: count_ops_of(p, OPS_MODES) for n, p in checkouts.items()}},
                                        indent=2) + "\n")
        return 0
    data: dict = {"context": {"uptime_start": uptime()}, "steps": {k: [] for k in checkouts}}
    registered = {name: registered_modes(path) for name, path in checkouts.items()}  # one subprocess per checkout
    modes = {name: tuple(m for m in STEP_MODES if m in registered[name]) for name in checkouts}
    for r in range(args.rounds):
        for name in list(checkouts)[r % 2:] + list(checkouts)[: r % 2]:
            data["steps"][name].append(step_round(checkouts[name], modes[name]))
        print(f"step round {r + 1}/{args.rounds} done; {uptime()}", flush=True)
    data["context"]["uptime_after_steps"] = uptime()
    if args.runs:
        from bench.default_run import time_default_runs
        from bench.table import default_run_figures

        data["default_run"] = default_run_figures(time_default_runs(args.runs, (), 1, checkouts["before"]))
        data["context"]["uptime_after_default_runs"] = uptime()
    if not args.no_ops:
        data["ops"] = {name: count_ops_of(path, OPS_MODES) for name, path in checkouts.items()}
    data["context"]["uptime_end"] = uptime()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {args.json}; {data['context']['uptime_end']}")
    return 0


def ratios(rounds: list[dict[str, float]]) -> dict[str, tuple[float, float]]:
    """{mode: (median ms per step, median ratio to the same round's bare)} over the rounds."""
    modes = list(rounds[0])
    return {m: (statistics.median(r[m] for r in rounds), statistics.median(r[m] / r["bare"] for r in rounds))
            for m in modes}


if __name__ == "__main__":
    sys.exit(main())
