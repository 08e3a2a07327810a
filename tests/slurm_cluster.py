"""A real one-node SLURM cluster on 127.0.0.1 for end-to-end tests: munge, `slurmctld` and `slurmd`
(Debian's `slurm-wlm` and `munge`, installed by `.ci/install_slurm.sh`) started from a generated
`slurm.conf` in a temp folder, stopped (jobs cancelled first) at the end.

The cluster: one node with 2 CPUs in one partition, jobs requeueable (`JobRequeue=1`,
`PreemptMode=REQUEUE`), short timeouts so a lost node or a cancelled job is noticed in seconds.
Client commands (`sinfo`, `sbatch`, `scancel`, submitit's calls) find it through `SLURM_CONF`,
which `SlurmCluster.env` carries; nothing under /etc is written. The daemons run as root (SLURM's
`SlurmUser=root`): the tests need root to start them, and skip, saying why, without it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.servers import free_port, stop_group

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sinfo", "sbatch", "srun", "scancel", "scontrol", "squeue")
PARTITION = "debug"  # the default partition: sweeps run here, preemptable
URGENT = "urgent"  # the same node at a higher priority tier: a job here preempts (requeues) jobs of `debug`
NODE_CPUS = 2


def missing_reason() -> str | None:
    """Why a cluster cannot be started here, or None when it can."""
    missing = [name for name in (*DAEMONS, *CLIENTS) if shutil.which(name) is None
               and not Path("/usr/sbin", name).exists()]
    if missing:
        return (f"SLURM is not installed ({', '.join(missing)} missing; Debian: apt-get install slurm-wlm munge, "
                "which .ci/install_slurm.sh does)")
    if os.geteuid() != 0:
        return "the test SLURM cluster runs its daemons as root; run the SLURM tests as root"
    return None


def daemon(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


@dataclass
class SlurmCluster:
    """A started cluster: its folder, `slurm.conf`, node, partition and the environment its clients need."""

    folder: Path
    conf: Path
    node: str
    partition: str = PARTITION
    env: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, check: bool = True, timeout: float = 30) -> str:
        """A SLURM client command against this cluster; its stdout (stderr joined into the failure message)."""
        proc = subprocess.run(list(args), env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)} exited {proc.returncode}: {proc.stdout}{proc.stderr}")
        return proc.stdout

    def sinfo(self) -> str:
        """`PARTITION AVAIL NODES STATE CPUS NODELIST` of this cluster's one node, one line."""
        return self.run("sinfo", "--noheader", f"--partition={self.partition}", "-o", "%P %a %D %T %c %N").strip()

    def node_state(self) -> str:
        """The node's state in the sweep partition (`idle`, `mixed`, `allocated`, ...); '' while nobody answers."""
        return self.run("sinfo", "--noheader", f"--partition={self.partition}", "-o", "%T", check=False).strip()

    def job_fields(self, job_id: str) -> dict[str, str]:
        """`scontrol show job` as a dict (JobState, Restarts, ExitCode, ...); {} once the controller forgot it.

        An array task by `<array job id>_<task id>`: the bare id of the array's first task is also the array's
        id, for which the controller lists every task."""
        lines = self.run("scontrol", "show", "job", "--oneliner", job_id, check=False).splitlines()
        assert len(lines) <= 1, f"job {job_id} names {len(lines)} jobs; name an array task as <array>_<task>"
        return dict(part.split("=", 1) for part in (lines or [""])[0].split() if "=" in part)

    def queue(self) -> list[str]:
        """Ids of the jobs the controller still lists as pending or running."""
        return self.run("squeue", "--noheader", "-o", "%i").split()


def slurm_conf(folder: Path, node: str, ctld_port: int, slurmd_port: int, munge_socket: Path) -> str:
    """The whole `slurm.conf` of the test cluster (SLURM 22.05 syntax)."""
    memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    return "\n".join([
        "ClusterName=gradreg-test",
        f"SlurmctldHost={node}(127.0.0.1)",
        f"SlurmctldPort={ctld_port}",
        f"SlurmdPort={slurmd_port}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={munge_socket}",
        f"StateSaveLocation={folder / 'state'}",
        f"SlurmdSpoolDir={folder / 'spool'}",
        f"SlurmctldPidFile={folder / 'slurmctld.pid'}",
        f"SlurmdPidFile={folder / 'slurmd.pid'}",
        f"SlurmctldLogFile={folder / 'slurmctld.log'}",
        f"SlurmdLogFile={folder / 'slurmd.log'}",
        "SlurmctldDebug=info",
        "SlurmdDebug=info",
        "ProctrackType=proctrack/linuxproc",  # no cgroup plugin: works inside containers
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_CPU",
        "SlurmdParameters=config_overrides",  # the node is what this file says, whatever the host has
        "MpiDefault=none",
        "ReturnToService=2",
        "JobRequeue=1",  # batch jobs may be requeued (scontrol requeue, submitit's requeue on preemption)
        "PreemptType=preempt/partition_prio",
        "PreemptMode=REQUEUE",
        "SlurmctldTimeout=10",
        "SlurmdTimeout=10",
        "MessageTimeout=5",
        "InactiveLimit=0",
        "KillWait=10",  # seconds between SIGTERM and SIGKILL when a job is cancelled or preempted
        "MinJobAge=600",  # finished jobs stay visible to `scontrol show job` (no accounting database here)
        "SchedulerParameters=sched_interval=2",
        f"NodeName={node} NodeAddr=127.0.0.1 CPUs={NODE_CPUS} RealMemory={memory_mb} State=UNKNOWN",
        f"PartitionName={PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP PriorityTier=1",
        f"PartitionName={URGENT} Nodes={node} MaxTime=INFINITE State=UP PriorityTier=2 PreemptMode=OFF",
        "",
    ])


def wait_until(check, what: str, timeout_s: float, logs: list[Path]) -> None:  # noqa: ANN001
    """Poll `check()` until true; on timeout fail with the end of each daemon log."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name} ---\n{p.read_text()[-2000:]}" for p in logs if p.exists())
            raise AssertionError(f"{what} within {timeout_s:g} s\n{tails}")
        time.sleep(0.5)


@contextmanager
def slurm_cluster(start_timeout_s: float = 60) -> Iterator[SlurmCluster]:
    """Start munged, slurmctld and slurmd for one node on 127.0.0.1; yield the cluster once `sinfo` shows
    the node idle; cancel every job and stop the daemons afterwards. Skips the test when it cannot start."""
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    folder = Path(tempfile.mkdtemp(prefix="gradreg-slurm-"))
    node = socket.gethostname().split(".")[0]
    munge_socket = folder / "munge" / "munge.socket"
    for sub in ("munge", "state", "spool"):
        (folder / sub).mkdir(mode=0o700)
    key = folder / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    conf = folder / "slurm.conf"
    conf.write_text(slurm_conf(folder, node, free_port(), free_port(), munge_socket))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    cluster = SlurmCluster(folder=folder, conf=conf, node=node, env=env)
    logs = [folder / "munged.log", folder / "slurmctld.log", folder / "slurmd.log"]
    commands = [
        [daemon("munged"), "--foreground", "--force", f"--socket={munge_socket}", f"--key-file={key}",
         f"--pid-file={folder / 'munge' / 'munged.pid'}", f"--log-file={logs[0]}",
         f"--seed-file={folder / 'munge' / 'munged.seed'}"],
        [daemon("slurmctld"), "-D", "-i", "-f", str(conf)],  # -i: ignore any state of an earlier start
        [daemon("slurmd"), "-D", "-f", str(conf)],
    ]
    started: list[subprocess.Popen] = []
    try:
        for cmd in commands:
            started.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                            start_new_session=True))
            if cmd[0].endswith("munged"):
                wait_until(munge_socket.exists, "munged did not open its socket", start_timeout_s, logs)
        wait_until(lambda: cluster.node_state() == "idle",
                   f"`sinfo` did not show node {node} idle", start_timeout_s, logs)
        yield cluster
    finally:
        stop_cluster(cluster, started)
        shutil.rmtree(folder, ignore_errors=True)


def stop_cluster(cluster: SlurmCluster, started: list[subprocess.Popen]) -> None:
    """Cancel every job (so no job step outlives slurmd), then stop slurmd, slurmctld and munged in that order."""
    if len(started) == len(DAEMONS) and all(p.poll() is None for p in started):
        try:
            jobs = cluster.queue()
            if jobs:
                cluster.run("scancel", "--full", *jobs, check=False)
            deadline = time.monotonic() + 30
            while cluster.queue() and time.monotonic() < deadline:
                time.sleep(0.5)
        except (subprocess.SubprocessError, OSError):
            pass  # the controller is unreachable: stopping the daemons is all that is left to do
    for proc in reversed(started):
        stop_group(proc)
