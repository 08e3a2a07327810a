"""Sweeps on a real SLURM cluster (tests/slurm_cluster.py: munge, slurmctld and slurmd for one node on
127.0.0.1): a 2-job sweep through `hydra/launcher=slurm` (submitit); a job stopped by
`scancel --signal=TERM`, then requeued; a job preempted by a higher-tier one; a job requeued by submitit
itself (USR2). A requeued job continues its own MLflow run from its last.ckpt (src/lifecycle/requeue.py).
Slow (one to three minutes each); skipped, saying why, where SLURM is not installed (`.ci/install_slurm.sh`
installs it) or the tests do not run as root."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from src.paths import PROJECT_ROOT
from src.tracking.liveness import SLURM_ARRAY_TAG, SLURM_JOB_TAG, process_tags, slurm_tags
from src.tracking.sweeps import SWEEP_FILE
from tests.slurm_cluster import NODE_CPUS, URGENT, SlurmCluster, slurm_cluster
from tests.sweeps import TINY, loss_steps, sweep_runs, wait_for_jobs

LAUNCHER = [  # one CPU and 1 GB per job, so the 2-CPU node runs both jobs of a sweep at once
    "hydra/launcher=slurm", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1",
    "hydra.launcher.timeout_min=60",  # submitit calls any USR2 in the last 10 minutes of a job a time-out
]
LONG_JOB = [  # ~128 steps per epoch, long enough to be signalled after a few logged steps
    "data=synthetic", "data.num_samples=1024", "data.batch_size=8", "sched=none", "test=false",
    "trainer.max_epochs=-1", "trainer.limit_val_batches=2", "trainer.enable_progress_bar=false",
    "trainer.log_every_n_steps=1",
]
# far more than the steps done before the signal lands: the store shows a run's steps up to 2 s late (the logger's
# background writer), hundreds of LeNet-5 steps on an idle machine. On a loaded machine (a few steps a second),
# SLURM_TEST_MAX_STEPS=300 keeps each requeued continuation to minutes.
MAX_STEPS = int(os.environ.get("SLURM_TEST_MAX_STEPS", "1000"))


def test_slurm_job_tags_come_from_the_job_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(name, raising=False)
    assert slurm_tags() == {} and SLURM_JOB_TAG not in process_tags(), "no SLURM job: no SLURM tags"
    monkeypatch.setenv("SLURM_JOB_ID", "8")
    assert slurm_tags() == {SLURM_JOB_TAG: "8"}, "a plain job has no array id"
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "7")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    assert process_tags()[SLURM_JOB_TAG] == "8" and process_tags()[SLURM_ARRAY_TAG] == "7_1"


@pytest.fixture(scope="module")
def cluster() -> SlurmCluster:
    with slurm_cluster() as started:
        print(f"\nsinfo: {started.sinfo()}")
        yield started


def launch(cluster: SlurmCluster, tmp: Path, uri: str, *overrides: str) -> subprocess.Popen:
    """`python -m src.train -m ... hydra/launcher=slurm` from the project root, as a user starts it on a login
    node; its output goes to `tmp/sweep.log`."""
    env = {k: v for k, v in cluster.env.items() if k != "PYTEST_CURRENT_TEST"}
    env.update(MLFLOW_TRACKING_URI=uri, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "src.train", "-m", f"paths.log_dir={tmp / 'outputs'}", *LAUNCHER,
           f"hydra.launcher.partition={cluster.partition}", *overrides]
    return subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=(tmp / "sweep.log").open("w"),
                            stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen, tmp: Path, timeout: float = 1200) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"the sweep did not end in {timeout:g} s:\n{log_tail(tmp)}") from None


def log_tail(tmp: Path, n: int = 3000) -> str:
    lines = (tmp / "sweep.log").read_text().splitlines()
    return "\n".join(line for line in lines if "sacct" not in line and "accounting storage" not in line)[-n:]


def wait_for_queue_to_drain(cluster: SlurmCluster, timeout: float = 900) -> None:
    """Until the controller lists no pending or running job (a job's process may outlive its result file)."""
    deadline = time.monotonic() + timeout
    while cluster.queue():
        assert time.monotonic() < deadline, f"jobs still queued after {timeout:g} s: {cluster.queue()}"
        time.sleep(1)


def job_and_run_line(job_id: str, job: dict[str, str], client: MlflowClient, run) -> str:  # noqa: ANN001
    """`SLURM job <id> <state> restarts <n>; MLflow run <id> (<name>) <status> outcome=<o> train/loss steps <n>`."""
    return (f"SLURM job {job_id} {job['JobState']} restarts {job['Restarts']}; MLflow run {run.info.run_id} "
            f"({run.info.run_name}) {run.info.status} outcome={run.data.tags.get('outcome')} train/loss steps "
            f"{len(loss_steps(client, run.info.run_id))}")


@pytest.mark.slow  # a real SLURM cluster and a 2-job sweep through the CLI: about a minute
def test_two_job_sweep_on_slurm_nests_two_finished_runs_tagged_with_their_jobs(cluster, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    started = time.monotonic()
    proc = launch(cluster, tmp_path, uri, *TINY, "seed=0,1")
    assert finish(proc, tmp_path) == 0, log_tail(tmp_path)
    wait_for_queue_to_drain(cluster)
    print(f"sweep of 2 jobs: {time.monotonic() - started:.0f} s from submission to an empty queue")

    client = MlflowClient(tracking_uri=uri)
    parent, children = sweep_runs(client)
    assert parent.info.status == "FINISHED", log_tail(tmp_path)
    assert parent.data.tags["sweep_launcher"] == "SlurmLauncher"
    assert parent.data.tags["sweep_outcomes"] == "completed=2"
    assert SLURM_JOB_TAG not in parent.data.tags, "the sweep was launched from outside any SLURM job"
    assert len(children) == 2
    array_ids = set()
    for run in sorted(children, key=lambda r: int(r.data.tags["sweep_job"])):
        tags = run.data.tags
        job = cluster.job_fields(tags[SLURM_ARRAY_TAG])
        print(f"job {tags['sweep_job']}: SLURM job {tags[SLURM_JOB_TAG]} (array task {tags[SLURM_ARRAY_TAG]}), "
              f"SLURM state {job['JobState']}, MLflow run {run.info.run_id} {run.info.status} "
              f"outcome={tags['outcome']}")
        assert (run.info.status, tags["outcome"]) == ("FINISHED", "completed")
        assert tags["mlflow.parentRunId"] == parent.info.run_id
        assert tags[SLURM_JOB_TAG] == job["JobId"], "the controller knows the array task by the tagged job id"
        assert job["ArrayTaskId"] == tags["sweep_job"], "submitit's array task i runs the sweep's job i"
        assert (job["JobState"], job["ExitCode"], job["Partition"]) == ("COMPLETED", "0:0", cluster.partition)
        array_ids.add(job["ArrayJobId"])
    assert len(array_ids) == 1, "one SLURM array per sweep"
    sweep_dir = Path(parent.data.tags["sweep_dir"])
    assert (sweep_dir / SWEEP_FILE).is_file()
    assert sorted(p.name for p in (sweep_dir / ".submitit").glob("*_*") if p.is_dir()) == sorted(
        r.data.tags[SLURM_ARRAY_TAG] for r in children), "submitit's folders are named by the same job ids"


@pytest.fixture(scope="module")
def terminated_job(cluster, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A 1-job sweep whose job gets `scancel --signal=TERM` once it has logged 10 steps; the sweep has ended."""
    tmp = tmp_path_factory.mktemp("slurm-term")
    uri = f"sqlite:///{tmp / 'store' / 'mlflow.db'}"
    started = time.monotonic()
    proc = launch(cluster, tmp, uri, *LONG_JOB, f"trainer.max_steps={MAX_STEPS}", "seed=0")
    run = wait_for_logged_steps(proc, tmp, uri, count=10)
    job_id = run.data.tags[SLURM_JOB_TAG]
    cluster.run("scancel", "--signal=TERM", job_id)
    rc = finish(proc, tmp)
    wait_for_queue_to_drain(cluster)
    return {"tmp": tmp, "uri": uri, "rc": rc, "run_id": run.info.run_id, "job_id": job_id, "started": started}


def wait_for_logged_steps(proc: subprocess.Popen, tmp: Path, uri: str, count: int, timeout: float = 900):
    """The job's run once it has `count` train/loss points."""
    def logged(client: MlflowClient, jobs: list):  # noqa: ANN202
        return next((r for r in jobs if len(loss_steps(client, r.info.run_id)) >= count), None)

    return wait_for_jobs(proc, tmp, uri, logged, f"the job logged {count} steps (before its signal)",
                         lambda: log_tail(tmp), timeout)


@pytest.mark.slow  # a sweep on the SLURM cluster whose job is signalled mid-training: about a minute
def test_scancel_term_ends_the_job_killed_with_a_checkpoint_of_every_logged_step(cluster, terminated_job) -> None:
    client = MlflowClient(tracking_uri=terminated_job["uri"])
    parent, children = sweep_runs(client)
    [run] = children
    steps = loss_steps(client, run.info.run_id)
    ckpt = Path(run.data.tags["checkpoint_dir"]) / "last.ckpt"
    saved_step = torch.load(ckpt, map_location="cpu", weights_only=False)["global_step"]
    job = cluster.job_fields(terminated_job["job_id"])
    print(f"TERM: SLURM job {terminated_job['job_id']} {job['JobState']} exit {job['ExitCode']}; MLflow run "
          f"{run.info.run_id} {run.info.status} outcome={run.data.tags['outcome']}; train/loss steps logged "
          f"{len(steps)}, last.ckpt at step {saved_step}; parent {parent.info.status} "
          f"({parent.data.tags['sweep_outcomes']}); sweep exit {terminated_job['rc']}")
    assert (run.info.status, run.data.tags["outcome"]) == ("KILLED", "interrupted")
    assert run.data.tags[SLURM_JOB_TAG] == terminated_job["job_id"]
    assert steps == list(range(len(steps))) and 10 <= len(steps) < MAX_STEPS, "each step once, stopped early"
    assert saved_step == len(steps), "the checkpoint holds exactly the steps the run logged"
    assert (parent.info.status, parent.data.tags["sweep_outcomes"]) == ("KILLED", "interrupted=1")
    assert terminated_job["rc"] != 0, "the launcher reports the stopped job"
    assert job["JobState"] == "COMPLETED", "the job itself returned: submitit stored its (stopped) result"


@pytest.mark.slow  # the signalled job requeued and run again on the SLURM cluster: about a minute
def test_requeued_job_continues_the_same_run_to_finished(cluster, terminated_job) -> None:
    job_id = terminated_job["job_id"]
    cluster.run("scontrol", "requeue", job_id)
    release_requeued(cluster, job_id)
    wait_for_queue_to_drain(cluster)
    client = MlflowClient(tracking_uri=terminated_job["uri"])
    parent, children = sweep_runs(client)
    job = cluster.job_fields(job_id)
    for run in children:
        print(f"after requeue: {job_and_run_line(job_id, job, client, run)}")
    print(f"parent {parent.info.status} ({parent.data.tags['sweep_outcomes']}); "
          f"{time.monotonic() - terminated_job['started']:.0f} s from submission")
    assert job["Restarts"] == "1"
    assert [r.info.run_id for r in children] == [terminated_job["run_id"]], "the requeued job continues its run"
    run = children[0]
    assert (run.info.status, run.data.tags["outcome"]) == ("FINISHED", "completed")
    assert loss_steps(client, run.info.run_id) == list(range(MAX_STEPS)), "every step logged once"
    assert (parent.info.status, parent.data.tags["sweep_outcomes"]) == ("FINISHED", "completed=1")


def release_requeued(cluster: SlurmCluster, job_id: str, timeout: float = 300) -> None:
    """SLURM holds a requeued batch job back (its begin time is set ahead); start it now instead."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = cluster.job_fields(job_id)
        if job.get("JobState") == "PENDING" and job.get("Reason") == "BeginTime":
            cluster.run("scontrol", "update", f"JobId={job_id}", "StartTime=now")
            return
        if job.get("JobState") in ("RUNNING", "COMPLETING"):
            return
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} was not requeued: {cluster.job_fields(job_id)}")


@pytest.mark.slow  # a sweep on the SLURM cluster preempted by another job, then requeued: 2-3 minutes
def test_preempted_job_keeps_a_checkpoint_of_every_step_and_its_requeue_continues_the_run(cluster, tmp_path) -> None:  # noqa: ANN001
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    proc = launch(cluster, tmp_path, uri, *LONG_JOB, f"trainer.max_steps={MAX_STEPS}", "seed=0")
    job_id = ""
    try:
        run = wait_for_logged_steps(proc, tmp_path, uri, count=10)
        job_id = run.data.tags[SLURM_JOB_TAG]
        urgent = cluster.run("sbatch", "--parsable", f"--partition={URGENT}", f"--cpus-per-task={NODE_CPUS}",
                             "--mem=100M", f"--output={tmp_path / 'urgent.out'}", "--wrap", "sleep 1").strip()
        rc = finish(proc, tmp_path)
        job = cluster.job_fields(job_id)
        client = MlflowClient(tracking_uri=uri)
        run = client.get_run(run.info.run_id)
        steps = loss_steps(client, run.info.run_id)
        ckpt = Path(run.data.tags["checkpoint_dir"]) / "last.ckpt"
        saved = torch.load(ckpt, map_location="cpu", weights_only=False)["global_step"] if ckpt.is_file() else None
        print(f"preempted by job {urgent}: {job_and_run_line(job_id, job, client, run)}, last.ckpt at step {saved}; "
              f"sweep exit {rc}")
        assert job["Restarts"] == "1", "SLURM requeued the preempted job"
        assert (run.info.status, run.data.tags["outcome"]) == ("KILLED", "interrupted")
        assert saved == len(steps), "the checkpoint holds exactly the steps the run logged"
        release_requeued(cluster, job_id)
        wait_for_queue_to_drain(cluster)
        parent, children = sweep_runs(client)
        job = cluster.job_fields(job_id)
        for child in children:
            print(f"after the requeue: {job_and_run_line(job_id, job, client, child)}")
        print(f"parent {parent.info.status} ({parent.data.tags['sweep_outcomes']})")
        assert [r.info.run_id for r in children] == [run.info.run_id], "the requeued job continues its run"
        assert (children[0].info.status, children[0].data.tags["outcome"]) == ("FINISHED", "completed")
        assert loss_steps(client, run.info.run_id) == list(range(MAX_STEPS)), "every step logged once"
        assert (parent.info.status, parent.data.tags["sweep_outcomes"]) == ("FINISHED", "completed=1")
    finally:
        proc.kill()
        if job_id and cluster.queue():
            cluster.run("scancel", job_id, check=False)
        wait_for_queue_to_drain(cluster)


@pytest.mark.slow  # a sweep on the SLURM cluster, its job requeued by submitit and run again: 2-3 minutes
def test_submitit_requeue_on_usr2_continues_the_same_run_to_finished(cluster, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    proc = launch(cluster, tmp_path, uri, *LONG_JOB, f"trainer.max_steps={MAX_STEPS}", "seed=0",
                  "hydra.launcher.max_num_timeout=1")
    try:
        run_id = wait_for_logged_steps(proc, tmp_path, uri, count=10).info.run_id
        job_id = MlflowClient(tracking_uri=uri).get_run(run_id).data.tags[SLURM_JOB_TAG]
        cluster.run("scancel", "--signal=USR2", job_id)
        release_requeued(cluster, job_id)
        rc = finish(proc, tmp_path)
        wait_for_queue_to_drain(cluster)
    finally:
        proc.kill()
    client = MlflowClient(tracking_uri=uri)
    parent, children = sweep_runs(client)
    job = cluster.job_fields(job_id)
    for run in children:
        print(f"USR2: {job_and_run_line(job_id, job, client, run)}; sweep exit {rc}")
    assert job["Restarts"] == "1", "submitit requeued the job"
    assert [r.info.run_id for r in children] == [run_id], "the requeued job continues its run"
    assert loss_steps(client, run_id) == list(range(MAX_STEPS)), "every step logged once"
    assert (children[0].info.status, parent.info.status, rc) == ("FINISHED", "FINISHED", 0)
