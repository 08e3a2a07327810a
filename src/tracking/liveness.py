"""Where a run's process lives, and a heartbeat that says it still does.

A run (and a sweep's parent run) records, when it becomes RUNNING:

- `host`: `socket.gethostname()`;
- `pid`: the process id;
- `pid_start`: `<boot id>:<pid namespace>:<start time in clock ticks since boot>` (from `/proc`), so
  a pid that the kernel gave to another process later is told apart from ours, and a process in
  another container or boot of a machine with the same name is never judged by its pid; empty
  where `/proc` is missing and psutil is not installed (then a live pid is taken as ours);
- `heartbeat`: UTC time (ISO 8601, seconds) of the last beat;
- `slurm_job_id` (and `slurm_array_job` for a task of an array, `<array job id>_<task id>` as `squeue`
  shows it) when the process runs inside a SLURM job: the job that `scancel`/`scontrol` act on, and
  the same id again after SLURM requeues the job.

`Heartbeat` is a daemon thread that rewrites the `heartbeat` tag every `every_s` seconds: one small
MLflow write per interval, nothing on the training loop. The reaper (`src/tracking/reaper.py`)
reads these tags to close runs whose process is gone.
"""

from __future__ import annotations

import os
import socket
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HOST_TAG, PID_TAG, PID_START_TAG, HEARTBEAT_TAG = "host", "pid", "pid_start", "heartbeat"
SLURM_JOB_TAG, SLURM_ARRAY_TAG = "slurm_job_id", "slurm_array_job"
DEFAULT_HEARTBEAT_S = 60.0  # seconds between beats; the reaper's default age limit is 15 times this


def hostname() -> str:
    return socket.gethostname()


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")  # e.g. 'pid:[4026531836]'; differs between containers
    except OSError:
        return ""


def process_space() -> str:
    """Which kernel boot and pid namespace this process lives in ('' where there is no /proc)."""
    boot = boot_id()
    return f"{boot}:{pid_namespace()}" if boot else ""


def process_start(pid: int) -> str | None:
    """The start token of a live process, '' when this system cannot tell, None when it is gone.

    On Linux: `<process_space()>:<start time in clock ticks since boot>`; elsewhere psutil's
    creation time when psutil is installed.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None if Path("/proc/self/stat").exists() else _psutil_start(pid)
    except OSError:
        return ""
    fields = stat[stat.rindex(")") + 2:].split()  # the command name may hold spaces: skip past its ')'
    return f"{process_space()}:{fields[19]}"  # field 22 of proc_pid_stat(5), counted after pid and comm


def _psutil_start(pid: int) -> str | None:
    try:
        import psutil
    except ImportError:
        return ""
    try:
        return f"psutil:{psutil.Process(pid).create_time():.2f}"
    except psutil.NoSuchProcess:
        return None


def pid_alive(pid: int) -> bool:
    """Does a process with this id exist on this host (whoever owns it)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, belongs to another user
        return True
    return True


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except (TypeError, ValueError):
        return None


def slurm_tags() -> dict[str, str]:
    """The SLURM job this process runs in, from the variables SLURM sets in every job ({} outside SLURM)."""
    tags = {SLURM_JOB_TAG: os.environ["SLURM_JOB_ID"]} if os.environ.get("SLURM_JOB_ID") else {}
    array_job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if tags and array_job and task:
        tags[SLURM_ARRAY_TAG] = f"{array_job}_{task}"
    return tags


def process_tags() -> dict[str, str]:
    """The liveness tags of this process, heartbeat included (set them before or with status RUNNING)."""
    pid = os.getpid()
    return {HOST_TAG: hostname(), PID_TAG: str(pid), PID_START_TAG: process_start(pid) or "",
            HEARTBEAT_TAG: utc_now(), **slurm_tags()}


class Heartbeat:
    """A daemon thread that sets the run's `heartbeat` tag every `every_s` seconds until `stop()`.

    A failed write (store busy or briefly away) is skipped; the next beat tries again. Use as a
    context manager around the life of the run.
    """

    def __init__(self, mlflow_client: Any, run_id: str, every_s: float = DEFAULT_HEARTBEAT_S) -> None:
        if not every_s > 0:
            raise ValueError(f"heartbeat every_s={every_s!r} is not allowed; it must be a number of seconds > 0")
        self.client, self.run_id, self.every_s = mlflow_client, run_id, float(every_s)
        self.beats = 0  # successful writes, for tests and diagnostics
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{run_id[:8]}", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.client.set_tag(self.run_id, HEARTBEAT_TAG, utc_now())
                self.beats += 1
            except Exception:  # noqa: BLE001 - a missed beat only makes the run look older
                continue

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)  # a daemon: never hold the exit for a slow store

    def __enter__(self) -> Heartbeat:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
