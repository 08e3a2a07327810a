"""The default run, `python -m src.train`, as a user starts it, beside a bare process of the same steps.

Each timed process is fresh: imports, Hydra, the MLflow run, 15 epochs of LeNet-5 on mnist5k, the test and the
end-of-run plots for the run; for the **bare process**, `import torch`, the LeNet-5 builder, and the same
1,650 SGD steps (15 epochs of 110 batches of 32, the training split's size) on in-memory tensors, nothing else:
the floor the run's cost is read against (`wall ×` and `CPU ×` in the table). With `baseline`, the default
run of another checkout (the code before a change) is timed in the same rounds: a round runs bare, the run,
the baseline's run, in an order rotated from round to round, so a change of the machine's load hits all alike.

Two more floors run in the same rounds, to tell the run's own cost from what its libraries cost before it does
anything: **the libraries' imports** (`import torch, pytorch_lightning, mlflow.tracking, hydra`, nothing else;
its "CPU s to the first step" is the CPU time when the imports are done: no process that uses them can reach
its first step in less) and **Lightning alone** (the same steps of
the same LeNet-5 as a minimal `LightningModule` in a `Trainer` with no logger, checkpoint, progress bar,
validation or test: what Lightning's loop costs over the bare one).

Per process: wall time; CPU time (user + system of the process and its threads, `ru_utime + ru_stime` of
the waited-for child); for the runs, the CPU time when the first optimizer step starts (everything before
training: imports, config, the MLflow run, the data, the sanity check) and the CPU time its garbage
collections took (`gc.callbacks`, the collecting thread's clock: what `src/training/frozen_setup.py` cuts,
readable on a machine too noisy for the totals to show it); peak RSS; the test accuracy.
Runs log into one throwaway sqlite store, created (and migrated) before the first timed run, as a user's
store is after their first run; outputs go to a temporary folder. A run's output goes to a
pseudo-terminal, as in a user's shell, so the progress bar draws what it does there. Each process is
started by a small helper (`MEASURE`), not by the benchmark, which holds gigabytes after timing ResNet-152
(a child's peak RSS counts the process it was forked from).

Imports are measured apart, untimed: one short run under `python -X importtime`, the sum of every module's
own import time, the packages that took longest (cumulative) and, always, the packages in `UNUSED` that
libraries import before the first step although the run does not use them there (the floor left by
Lightning, torchmetrics and MLflow: `docs/performance.md`, *Imports*).
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
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MEASURE = (  # runs argv[1:], then prints its peak resident set (KiB on Linux) and CPU seconds
    "import resource, subprocess, sys; status = subprocess.call(sys.argv[1:]); "
    "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
    "print(f'\\npeak_rss_kib={u.ru_maxrss} cpu_s={u.ru_utime + u.ru_stime:.3f}'); sys.exit(status)"
)
MARK_FIRST_STEP = (  # prints the process's CPU seconds when its first optimizer step starts (needs `time` imported)
    "from torch.optim.optimizer import register_optimizer_step_pre_hook\n"
    "def mark(*args):\n"
    "    if not mark.done:\n"
    "        mark.done = True\n"
    "        print(f'\\nfirst_step_cpu_s={time.process_time():.3f}', flush=True)\n"
    "mark.done = False\n"
    "register_optimizer_step_pre_hook(mark)\n"
)
STEP_DATA = (  # argv: epochs, batches per epoch; the same random examples for the bare process and Lightning alone
    "epochs, batches = int(sys.argv[1]), int(sys.argv[2])\n"
    "torch.manual_seed(0)\n"
    "n = 3500 if batches >= 110 else 32 * batches\n"
    "x, y = torch.randn(n, 1, 32, 32), torch.randint(0, 10, (n,))\n"
)
FIRST_STEP = (  # `python -m src.train argv[1:]`, printing its CPU seconds when the first optimizer step starts,
    # and at its end the CPU seconds its garbage collections took (the collecting thread's, per collection)
    "import atexit, gc, runpy, sys, time\n"
    "gc_cpu_s = [0.0, 0.0]\n"
    "def gc_clock(phase, info):\n"
    "    if phase == 'start':\n"
    "        gc_cpu_s[1] = time.thread_time()\n"
    "    else:\n"
    "        gc_cpu_s[0] += time.thread_time() - gc_cpu_s[1]\n"
    "gc.callbacks.append(gc_clock)\n"
    "atexit.register(lambda: print(f'\\ngc_cpu_s={gc_cpu_s[0]:.3f}', flush=True))\n"
    + MARK_FIRST_STEP
    + "sys.argv = ['src.train', *sys.argv[1:]]\n"
    "runpy.run_module('src.train', run_name='__main__', alter_sys=True)\n"
)
BARE = (  # argv: epochs, batches per epoch; LeNet-5's steps in plain PyTorch
    "import sys, torch, torch.nn.functional as F\n"
    "from src.models.lenet import lenet5\n"
    + STEP_DATA
    + "net = lenet5()\n"
    "opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)\n"
    "for epoch in range(epochs):\n"
    "    order = torch.randperm(n)\n"
    "    for i in range(0, n, 32):\n"
    "        idx = order[i:i + 32]\n"
    "        loss = F.cross_entropy(net(x[idx]), y[idx])\n"
    "        opt.zero_grad()\n"
    "        loss.backward()\n"
    "        opt.step()\n"
)
LIBRARIES = (  # a run's libraries, imported only; its "first step" is the end of the imports (the process's own
    # end, interpreter teardown included, is in its CPU s): no run that uses them starts training sooner
    "import time, torch, pytorch_lightning, mlflow.tracking, hydra\n"
    "print(f'\\nfirst_step_cpu_s={time.process_time():.3f}', flush=True)\n"
)
LIGHTNING = (  # argv: epochs, batches per epoch; the bare process's steps through Lightning's loop, nothing else
    "import sys, time, torch, torch.nn.functional as F, pytorch_lightning as pl\n"
    "from torch.utils.data import DataLoader, TensorDataset\n"
    "from src.models.lenet import lenet5\n"
    + MARK_FIRST_STEP
    + "class Plain(pl.LightningModule):\n"
    "    def __init__(self):\n"
    "        super().__init__()\n"
    "        self.net = lenet5()\n"
    "    def training_step(self, batch, batch_idx):\n"
    "        x, y = batch\n"
    "        return F.cross_entropy(self.net(x), y)\n"
    "    def configure_optimizers(self):\n"
    "        return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)\n"
    + STEP_DATA
    + "data = TensorDataset(x, y)\n"
    "trainer = pl.Trainer(max_epochs=epochs, accelerator='cpu', devices=1, logger=False, enable_checkpointing=False,\n"
    "                     enable_progress_bar=False, enable_model_summary=False)\n"
    "trainer.fit(Plain(), DataLoader(data, batch_size=32, shuffle=True))\n"
)
FULL_STEPS = (15, 110)  # the default run: 15 epochs of ceil(3,500 / 32) batches
QUICK = (  # `--quick`: the same entry point and path through the code, a few batches
    "trainer.max_epochs=1", "trainer.limit_train_batches=5", "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
)
QUICK_STEPS = (1, 5)
UNUSED = (  # imported before the first step by libraries, used by no part of a run there (plots: at its end)
    "scipy",  # torchmetrics' __init__ (`scipy.signal`, a back-compat shim), reached through Lightning
    "torchvision",  # torchmetrics' image metrics; cumulative: includes torch._dynamo, which Lightning imports anyway
    "matplotlib",  # torchmetrics' plotting helpers; a run's own plots come after training
    "pandas",  # MLflow's package (its data-set types)
    "fastapi",  # MLflow's package (its gateway, through mlflow.genai)
)


@dataclass
class Timings:
    """The measurements of one kind of process over the rounds (lists: one entry per round)."""

    walls_s: list[float] = field(default_factory=list)
    cpus_s: list[float] = field(default_factory=list)
    first_step_cpus_s: list[float] = field(default_factory=list)
    gc_cpus_s: list[float] = field(default_factory=list)  # the runs' garbage collections (not the exit's)
    peak_rss_mib: float = 0.0  # the largest of the rounds
    test_acc: float | None = None  # of the last round (every run of the default config gives the same one)

    @property
    def wall_s(self) -> float:
        return statistics.median(self.walls_s)

    @property
    def cpu_s(self) -> float:
        return statistics.median(self.cpus_s)

    @property
    def first_step_cpu_s(self) -> float | None:
        return statistics.median(self.first_step_cpus_s) if self.first_step_cpus_s else None

    @property
    def gc_cpu_s(self) -> float | None:
        return statistics.median(self.gc_cpus_s) if self.gc_cpus_s else None


@dataclass
class DefaultRuns:
    """The default run, the bare process and (optionally) the baseline's default run, timed in the same rounds."""

    run: Timings
    bare: Timings
    baseline: Timings | None = None
    libraries: Timings | None = None  # the libraries' imports alone
    lightning: Timings | None = None  # the bare steps through Lightning's loop alone
    imports: dict[str, dict[str, float]] = field(default_factory=dict)  # "run"/"baseline" -> importtime figures


def run_in_terminal(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    """Run `cmd` with a pseudo-terminal as its stdout and stderr; return (exit status, what it printed)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
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


def _measure(into: Timings, cmd: list[str], env: dict[str, str], cwd: Path) -> None:
    start = time.perf_counter()
    status, out = run_in_terminal([sys.executable, "-c", MEASURE, *cmd], env, cwd)
    into.walls_s.append(time.perf_counter() - start)
    if status != 0:
        raise RuntimeError(f"{' '.join(cmd)} in {cwd} failed ({status}):\n{out[-3000:]}")
    found = re.search(r"peak_rss_kib=(\d+) cpu_s=([0-9.]+)", out)
    into.peak_rss_mib = max(into.peak_rss_mib, int(found.group(1)) / 1024)
    into.cpus_s.append(float(found.group(2)))
    first = re.search(r"first_step_cpu_s=([0-9.]+)", out)
    if first:
        into.first_step_cpus_s.append(float(first.group(1)))
    collections = re.search(r"gc_cpu_s=([0-9.]+)", out)
    if collections:
        into.gc_cpus_s.append(float(collections.group(1)))
    accuracy = re.search(r"test/acc = ([0-9.]+)", out)
    into.test_acc = float(accuracy.group(1)) if accuracy else None


def import_times(cwd: Path, env: dict[str, str], overrides: tuple[str, ...], top: int = 6) -> dict[str, float]:
    """One short run under `-X importtime`: {"total_s": sum of every module's own time, <package>: cumulative s
    of its imports entered from another package (the `top` largest, and every package of `UNUSED` imported)}."""
    cmd = [sys.executable, "-X", "importtime", "-c", FIRST_STEP, *overrides, *QUICK]
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"importtime run failed:\n{done.stderr[-3000:]}")
    rows = []  # (depth, root package, self µs, cumulative µs), children before their parent
    for line in done.stderr.splitlines():
        found = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)", line)
        if found:
            rows.append((len(found.group(3)) // 2, found.group(4).split(".")[0], int(found.group(1)),
                         int(found.group(2))))
    packages: dict[str, float] = {}
    stack: list[tuple[int, str]] = []  # the enclosing imports, read parents first
    for depth, root, _, cumulative in reversed(rows):
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if not stack or stack[-1][1] != root:  # entered from another package: its time counts for this one
            packages[root] = packages.get(root, 0.0) + cumulative / 1e6
        stack.append((depth, root))
    total = sum(r[2] for r in rows)
    largest = sorted(packages.items(), key=lambda kv: kv[1], reverse=True)[:top]
    largest += [(name, packages[name]) for name in UNUSED if name in packages and name not in dict(largest)]
    return {"total_s": round(total / 1e6, 3), **{name: round(s, 3) for name, s in largest}}


def time_default_runs(count: int, overrides: tuple[str, ...] = (), threads: int = 0,
                      baseline: Path | None = None) -> DefaultRuns:
    """`count` rounds of the bare process, the default run (and the baseline's), interleaved; raises if one fails."""
    from mlflow.tracking import MlflowClient

    folder = Path(tempfile.mkdtemp(prefix="bench-default-"))
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    MlflowClient(tracking_uri=uri).search_experiments()  # creates and migrates the store, untimed
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "COLUMNS": "120"}
    env.pop("GRADREG_RUN_ID", None)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    args = [f"paths.log_dir={folder / 'outputs'}", *overrides]
    epochs, batches = QUICK_STEPS if overrides == QUICK else FULL_STEPS
    kinds: dict[str, tuple[list[str], dict[str, str], Path]] = {
        "bare": (["-c", BARE, str(epochs), str(batches)], {**env, "PYTHONPATH": str(ROOT)}, ROOT),
        "libraries": (["-c", LIBRARIES], {**env, "PYTHONPATH": str(ROOT)}, ROOT),
        "lightning": (["-c", LIGHTNING, str(epochs), str(batches)], {**env, "PYTHONPATH": str(ROOT)}, ROOT),
        "run": (["-c", FIRST_STEP, *args], {**env, "PYTHONPATH": str(ROOT)}, ROOT),
    }
    if baseline is not None:
        kinds["baseline"] = (["-c", FIRST_STEP, *args], {**env, "PYTHONPATH": str(baseline)}, baseline)
    timings = {kind: Timings() for kind in kinds}
    for r in range(count):
        order = list(kinds)[r % len(kinds):] + list(kinds)[: r % len(kinds)]
        for kind in order:
            cmd, kind_env, cwd = kinds[kind]
            _measure(timings[kind], [sys.executable, *cmd], kind_env, cwd)
    imports = {kind: import_times(kinds[kind][2], kinds[kind][1], (f"paths.log_dir={folder / 'outputs'}",))
               for kind in ("run", "baseline") if kind in kinds}
    return DefaultRuns(timings["run"], timings["bare"], timings.get("baseline"), libraries=timings["libraries"],
                       lightning=timings["lightning"], imports=imports)
