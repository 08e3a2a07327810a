"""The second edition's runner: every job of every `conf/experiment/study2_*.yaml` block, resumable.

A block's jobs are the product of its `hydra.sweeper.params` (`+study/arm` x `seed`, in the order listed). Each
job is one process, `python -m src.train experiment=study2_<block> +study/arm=<arm> seed=<s>`, at most `jobs` at
a time, the blocks' jobs in one queue: seeds 0 and 1 of every block in the blocks' order first (a study cut short
still has a pair of seeds for each block it reached), then the further seeds.

Resumable: before a job starts, the store is asked what became of it (its `overrides` tag names the block, arm
and seed; the newest such run counts):

| the job's run in the store | what the runner does |
|---|---|
| none | starts it |
| FINISHED (completed, or a finding such as divergence) | nothing |
| KILLED (interrupted by a signal, or closed `lost` by the reaper) | `resume=<run id>`: the run from its last.ckpt |
| RUNNING with a live process (another runner) | nothing |
| FAILED | nothing (a failure is reported, not retried: `--retry-failed` resumes it) |

The runner reaps the store before each lookup (as every `src.train` start does), so a RUNNING run whose process
died is KILLED/lost, and resumed, by the time the runner looks at its job. A SIGTERM or SIGINT to the runner is
passed to its jobs, which write last.ckpt and end KILLED/interrupted; the next `make study` continues them.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "study2_"


@dataclass(frozen=True)
class Job:
    block: str
    arm: str
    seed: str

    def overrides(self) -> list[str]:
        return [f"experiment={PREFIX}{self.block}", f"+study/arm={self.arm}", f"seed={self.seed}"]


def block_names() -> list[str]:
    return sorted(p.stem.removeprefix(PREFIX) for p in (ROOT / "conf" / "experiment").glob(f"{PREFIX}*.yaml"))


def block_jobs(block: str) -> list[Job]:
    """The block's jobs from its sweep parameters, seed-major (every arm of seed 0, then seed 1, ...)."""
    config = yaml.safe_load((ROOT / "conf" / "experiment" / f"{PREFIX}{block}.yaml").read_text())
    params = config["hydra"]["sweeper"]["params"]
    arms = [a.strip() for a in str(params["+study/arm"]).split(",")]
    seeds = [s.strip() for s in str(params["seed"]).split(",")]
    return [Job(block, arm, seed) for seed, arm in itertools.product(seeds, arms)]


def job_of(tags: dict[str, str]) -> Job | None:
    found = dict(o.lstrip("+").split("=", 1) for o in tags.get("overrides", "").split() if "=" in o)
    experiment = found.get("experiment", "")
    if not experiment.startswith(PREFIX) or "study/arm" not in found:
        return None
    return Job(experiment.removeprefix(PREFIX), found["study/arm"], found.get("seed", "0"))


def runs_by_job(mlflow_client: Any, experiment: str) -> dict[Job, Any]:
    """The newest run of every job in the store's study experiment, once the store's lost runs are closed: a job
    whose process died (SIGKILL, out of memory, a reboot) is then KILLED/lost and resumed, not skipped as if another
    runner held it (the runner starts no `src.train`, whose start would reap, while its only jobs look RUNNING)."""
    from src.tracking.client import search_all_runs
    from src.tracking.reaper import liveness_settings, reap

    _, lost_after_s, reap_enabled = liveness_settings()
    if reap_enabled:
        reap(mlflow_client, lost_after_s)
    exp = mlflow_client.get_experiment_by_name(experiment)
    if exp is None:
        return {}
    newest: dict[Job, Any] = {}
    for run in sorted(search_all_runs(mlflow_client, "", [exp.experiment_id]), key=lambda r: r.info.start_time):
        job = job_of(run.data.tags)
        if job is not None:
            newest[job] = run
    return newest


def action(run: Any | None, retry_failed: bool) -> str:
    """`start`, `resume` or `skip` for a job whose newest run is `run` (see the module's table)."""
    if run is None:
        return "start"
    status = run.info.status
    if status == "KILLED" or (status == "FAILED" and retry_failed):
        return "resume"
    return "skip"


@dataclass
class Queue:
    """Runs jobs as subprocesses, `jobs` at a time, and records each block's wall time and CPU seconds."""

    jobs: int
    experiment: str
    extra: list[str]
    env: dict[str, str]
    running: dict[subprocess.Popen, Job] = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)
    ended: dict[str, float] = field(default_factory=dict)
    cpu_s: dict[str, float] = field(default_factory=dict)
    stopping: bool = False

    def launch(self, job: Job, resume_id: str | None) -> None:
        # a resumed run takes the overrides of its first start from its tags: nothing is added to them
        args = [f"resume={resume_id}"] if resume_id else [*job.overrides(), f"logger.experiment_name={self.experiment}",
                                                          *self.extra]
        cmd = [sys.executable, "-m", "src.train", *args]
        print(("resume " if resume_id else "start  ") + " ".join(job.overrides()) + (f" ({resume_id})" if resume_id
                                                                                    else ""), flush=True)
        self.started.setdefault(job.block, time.time())
        proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env)
        self.running[proc] = job
        if self.stopping:  # the signal came while the job was being started: it gets it too
            proc.send_signal(signal.SIGTERM)

    def reap_one(self) -> None:
        """Wait until a job ends; add its CPU seconds (it and its waited-for children: `wait4`) to its block's."""
        while True:
            for proc, job in list(self.running.items()):
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    proc.returncode = os.waitstatus_to_exitcode(status)
                    del self.running[proc]
                    self.ended[job.block] = time.time()
                    self.cpu_s[job.block] = self.cpu_s.get(job.block, 0.0) + usage.ru_utime + usage.ru_stime
                    return
            time.sleep(1.0)

    def stop(self, signum: int, _frame: Any) -> None:
        """Pass the signal to every job (each writes last.ckpt and ends KILLED/interrupted), start no more."""
        self.stopping = True
        for proc in self.running:
            proc.send_signal(signal.SIGTERM if signum == signal.SIGTERM else signal.SIGINT)


def run_queue(mlflow_client: Any, blocks: list[str], jobs: int, experiment: str, extra: list[str],
              retry_failed: bool = False, arms: list[str] | None = None, seeds: list[str] | None = None) -> dict:
    """Run (or resume) every unfinished job of the blocks; the timing record of what this call ran.

    `arms` / `seeds`, when given, keep only the blocks' jobs of those arms / seeds (e.g. the regularized arms of a
    long block before its reference), in the queue's order."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    queue = Queue(jobs, experiment, extra, env)
    previous = {s: signal.signal(s, queue.stop) for s in (signal.SIGTERM, signal.SIGINT)}
    todo = sorted((job for block in blocks for job in block_jobs(block)
                   if (not arms or job.arm in arms) and (not seeds or job.seed in seeds)),
                  key=lambda j: (j.seed not in ("0", "1"), blocks.index(j.block), j.seed))
    arms = ROOT / "conf" / "study" / "arm"
    counts = {"started": 0, "resumed": 0, "skipped": 0}
    try:
        for job in todo:
            if queue.stopping:
                break
            while len(queue.running) >= jobs:
                queue.reap_one()
            if queue.stopping:  # the signal came while waiting for a free slot
                break
            if not (arms / f"{job.arm}.yaml").exists():
                print(f"skip   {' '.join(job.overrides())}: no arm file conf/study/arm/{job.arm}.yaml", flush=True)
                counts["skipped"] += 1
                continue
            run = runs_by_job(mlflow_client, experiment).get(job)  # seconds on a large store: a signal may come
            if queue.stopping:
                break
            what = action(run, retry_failed)
            if what == "skip":
                counts["skipped"] += 1
                continue
            counts["started" if what == "start" else "resumed"] += 1
            queue.launch(job, run.info.run_id if what == "resume" else None)
        while queue.running:
            queue.reap_one()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return {"blocks": {b: {"wall_s": round(queue.ended[b] - queue.started[b], 1), "cpu_s": round(queue.cpu_s[b], 1)}
                       for b in queue.started if b in queue.ended}, "jobs": counts, "interrupted": queue.stopping}
