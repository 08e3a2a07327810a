"""Preemption of a whole process group, through the real CLI: a 2-job joblib sweep whose jobs load their data
with 2 DataLoader workers each gets SIGTERM on its process group (what SLURM or `kill -- -<pgid>` does), then
both jobs are resumed by id to completion. Also the rule for repeated signals (`src/lifecycle/signals.py`) and
the workers' signal settings (`src/training/data/worker_signals.py`), each shown on a pair."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient
from torch.utils.data import DataLoader, TensorDataset

from src.lifecycle.signals import GRACE_S, StopRequest
from src.paths import PROJECT_ROOT
from src.training.data.worker_signals import SignalSafeLoader, worker_init
from tests.sweeps import loss_steps, sweep_runs, wait_for_jobs

JOB = [  # ~128 steps per epoch; 2 DataLoader workers per job
    "data=synthetic", "data.num_samples=1024", "data.batch_size=8", "data.num_workers=2", "sched=none", "test=false",
    "trainer.max_epochs=-1", "trainer.limit_val_batches=2", "trainer.enable_progress_bar=false",
    "trainer.log_every_n_steps=1",
]
MAX_STEPS = 150  # each job's end; the group is signalled long before (after 5 logged steps of each)


def group_members(pgid: int) -> list[str]:
    """`<pid> <command>` of every live process in this process group (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                found.append(f"{entry.name} {(entry / 'cmdline').read_text().replace(chr(0), ' ')[:120]}")
        except (OSError, ValueError):
            continue
    return found


def wait_for_both_jobs(proc: subprocess.Popen, tmp: Path, uri: str, count: int = 5, timeout: float = 900) -> None:
    """Until both job runs have `count` train/loss points."""
    def both_logged(client: MlflowClient, jobs: list) -> bool | None:
        return True if len(jobs) == 2 and all(len(loss_steps(client, r.info.run_id)) >= count for r in jobs) else None

    wait_for_jobs(proc, tmp, uri, both_logged, f"both jobs logged {count} steps",
                  lambda: (tmp / "sweep.log").read_text()[-3000:], timeout)


@pytest.mark.slow  # a 2-job sweep signalled mid-training, then two resumes: 1-2 minutes on 2 cores
def test_sigterm_to_the_process_group_of_a_sweep_then_resume_by_id(tmp_path: Path) -> None:
    started = time.monotonic()
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    env.update(MLFLOW_TRACKING_URI=uri, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "src.train", "-m", f"paths.log_dir={tmp_path / 'outputs'}", *JOB,
           f"trainer.max_steps={MAX_STEPS}", "seed=0,1", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    with (tmp_path / "sweep.log").open("w") as log:
        proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # its own process group, as a batch job's
    try:
        wait_for_both_jobs(proc, tmp_path, uri)
        members = group_members(proc.pid)
        os.killpg(proc.pid, signal.SIGTERM)
        rc = proc.wait(timeout=600)  # the jobs stop, close their runs and the launcher tallies: a minute when loaded
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + 15  # joblib's workers exit once the launcher has gone
    while group_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = group_members(proc.pid)
    output = (tmp_path / "sweep.log").read_text()
    print(f"\nprocess group {proc.pid} had {len(members)} processes when signalled; launcher exit {rc}; left: {left}")
    assert not left, f"processes left behind: {left}"
    assert len(members) >= 1 + 2 + 4, f"launcher, 2 joblib workers and 4 DataLoader workers expected: {members}"
    assert "DataLoader worker" not in output, "no DataLoader worker died"
    assert rc != 0, "the launcher reports the stopped jobs"

    client = MlflowClient(tracking_uri=uri)
    parent, children = sweep_runs(client)
    print(f"after SIGTERM: parent {parent.info.status} outcome={parent.data.tags.get('outcome')} "
          f"({parent.data.tags.get('sweep_outcomes')})")
    assert (parent.info.status, parent.data.tags.get("outcome")) == ("KILLED", "interrupted"), output[-3000:]
    assert parent.data.tags["sweep_outcomes"] == "interrupted=2"
    assert len(children) == 2
    stopped_at = {}
    for run in sorted(children, key=lambda r: r.data.tags["sweep_job"]):
        steps = loss_steps(client, run.info.run_id)
        ckpt = torch.load(Path(run.data.tags["checkpoint_dir"]) / "last.ckpt", map_location="cpu", weights_only=False)
        print(f"job {run.data.tags['sweep_job']}: run {run.info.run_id} {run.info.status} "
              f"outcome={run.data.tags['outcome']}, train/loss steps {len(steps)}, last.ckpt at step "
              f"{ckpt['global_step']}")
        assert (run.info.status, run.data.tags["outcome"]) == ("KILLED", "interrupted")
        assert steps == list(range(len(steps))) and 5 <= len(steps) < MAX_STEPS, "each step once, stopped early"
        assert ckpt["global_step"] == len(steps), "the checkpoint holds exactly the steps the run logged"
        stopped_at[run.info.run_id] = len(steps)

    for run_id, stop in stopped_at.items():  # by id alone: the run's own overrides (max_steps, workers) come back
        resume = subprocess.run([sys.executable, "-m", "src.train", f"resume={run_id}",
                                 f"paths.log_dir={tmp_path / 'outputs'}"], cwd=PROJECT_ROOT, env=env,
                                capture_output=True, text=True, timeout=400)
        assert resume.returncode == 0, (resume.stdout + resume.stderr)[-3000:]
        run = client.get_run(run_id)
        steps = loss_steps(client, run_id)
        print(f"resume={run_id}: exit 0, {run.info.status} outcome={run.data.tags['outcome']}, train/loss steps "
              f"{len(steps)} (stopped at {stop}, {len(set(steps))} distinct)")
        assert (run.info.status, run.data.tags["outcome"]) == ("FINISHED", "completed")
        assert steps == list(range(MAX_STEPS)), "every step logged exactly once across both segments"
        last = torch.load(Path(run.data.tags["checkpoint_dir"]) / "last.ckpt", map_location="cpu", weights_only=False)
        assert last["global_step"] == MAX_STEPS
    parent = client.get_run(parent.info.run_id)
    print(f"after both resumes: parent {parent.info.status} ({parent.data.tags['sweep_outcomes']}); "
          f"{time.monotonic() - started:.0f} s in all")
    assert (parent.info.status, parent.data.tags["sweep_outcomes"]) == ("FINISHED", "completed=2")


def test_a_repeated_sigterm_or_a_quick_second_sigint_waits_for_the_checkpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    stop = StopRequest()
    stop.fitting = True
    stop.handler(signal.SIGTERM, None)  # SLURM's preemption: two SIGTERMs milliseconds apart
    stop.handler(signal.SIGTERM, None)
    assert stop.signum == signal.SIGTERM, "the first asked for the clean stop; the second changed nothing"
    stop.handler(signal.SIGINT, None)  # a group's Ctrl-C right after
    clock = [time.monotonic() + GRACE_S + 1]
    monkeypatch.setattr("src.lifecycle.signals.time.monotonic", lambda: clock[0])
    stop.handler(signal.SIGTERM, None)  # a repeated SIGTERM never hurries the stop
    with pytest.raises(KeyboardInterrupt, match="again"):
        stop.handler(signal.SIGINT, None)  # a person pressing Ctrl-C again after the grace period


def test_outside_fit_the_first_signal_stops_at_once() -> None:
    stop = StopRequest()
    with pytest.raises(KeyboardInterrupt):
        stop.handler(signal.SIGTERM, None)


def child_fate(loader: DataLoader, signum: int) -> str:
    """Start the loader's one worker, send it `signum`, and say whether it survived."""
    iterator = iter(loader)
    next(iterator)
    [worker] = iterator._workers
    os.kill(worker.pid, signum)
    worker.join(timeout=5)  # a dying worker has gone well before (seconds on a loaded machine)
    alive = worker.is_alive()
    del iterator
    return "alive" if alive else f"dead ({worker.exitcode})"


def test_dataloader_workers_ignore_stop_signals_only_with_the_project_loader() -> None:
    data = TensorDataset(torch.arange(64.0))
    plain = DataLoader(data, batch_size=4, num_workers=1, persistent_workers=True)
    assert child_fate(plain, signal.SIGTERM).startswith("dead"), "PyTorch's worker dies of SIGTERM (its C handler)"
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2):
        safe = SignalSafeLoader(data, batch_size=4, num_workers=1, persistent_workers=True, worker_init_fn=worker_init)
        assert child_fate(safe, signum) == "alive", signal.Signals(signum).name


EXIT_WITH_A_LIVE_ITERATOR = """
import sys, torch
from torch.utils.data import TensorDataset
from src.training.data.worker_signals import SignalSafeLoader, worker_init
loader = SignalSafeLoader(TensorDataset(torch.arange(64.0)), batch_size=4, num_workers=2, worker_init_fn=worker_init)
iterator = iter(loader)
next(iterator)
print(" ".join(str(w.pid) for w in iterator._workers), flush=True)
KEPT = [iterator]  # alive at exit, as a stopped run's iterator held by a traceback or a reference cycle
"""


def test_a_process_exiting_with_a_live_iterator_ends_its_workers_instead_of_waiting_for_them() -> None:
    # multiprocessing ends daemonic children with SIGTERM, which these workers ignore, and then joins them: without
    # the exit hook the process waits for ever (a preempted sweep's joblib worker hung there)
    done = subprocess.run([sys.executable, "-c", EXIT_WITH_A_LIVE_ITERATOR], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    workers = [int(pid) for pid in done.stdout.split()]
    assert len(workers) == 2
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers), "the workers ended with their process"
