"""How a job whose run has already been closed truthfully leaves the process.

`main()` runs `train()` inside `exit_status()`, which asks `exit_for(exc)` about every exception:

- a stop by SIGINT/SIGTERM -> `SystemExit(128 + signal)`, as shells report them;
- a full disk (ENOSPC, EDQUOT, sqlite's "database or disk is full") -> `SystemExit` with one line
  that names the file and the run (exit status 1), instead of a traceback;
- a `UserError` (bad settings, a run that cannot be resumed, missing data, an unreachable store)
  -> its message alone on stderr and exit status 2; in a sweep, that job fails with the one line
  and the sweep goes on;
- anything else goes on: a crash, Hydra prints its traceback (exit status 1; the run holds
  `traceback.txt`).

Inside a sweep job that runs in a worker process of a parallel launcher (joblib), a `SystemExit`
would be shipped back to the launcher and end the whole sweep. There the job raises `JobStopped`,
an ordinary exception: Hydra records that job as failed and the other jobs go on. Ctrl-C at the
terminal still stops the sweep, since the launcher process receives the same SIGINT.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from src.settings import UserError

DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
DISK_FULL_TEXT = ("database or disk is full", "No space left on device")


class JobStopped(RuntimeError):
    """A sweep job that was stopped (signal) or could not write (full disk); its run says which."""


class DiskFull(RuntimeError):
    """Raised by the run context once the run is closed FAILED after a full disk, or after the store refused its
    writes (closed, or left for the reaper: the message says which); the message is one line, exit status 1."""


def disk_full_error(exc: BaseException | None) -> BaseException | None:
    """The full-disk error behind `exc` (itself, its cause or its context), or None."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
            return exc
        if any(text in str(exc) for text in DISK_FULL_TEXT):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def full_folder(candidates: list[str]) -> str | None:
    """The first of these folders whose file system has (next to) no space left (< 1 MiB available)."""
    for folder in candidates:
        path = folder.removeprefix("file://")
        while path and not os.path.exists(path):
            path = os.path.dirname(path)
        try:
            stats = os.statvfs(path)
        except (OSError, ValueError):
            continue
        if stats.f_bavail * stats.f_frsize < 2**20:
            return folder.removeprefix("file://")
    return None


def disk_full_line(error: BaseException, run_id: str | None, candidates: list[str] | None = None) -> str:
    """One line: what could not be written, where, and what became of the run.

    The error names its file when the write failed on opening it; a failed copy (an artifact) often
    does not, and then the first full folder among `candidates` (artifact root, checkpoints) is named.
    """
    where = getattr(error, "filename", None) or full_folder(candidates or [])
    what = f"writing {where}" if where else "writing"
    run = (f"run {run_id} ended FAILED (outcome=failed); what it logged before is kept" if run_id
           else "nothing was trained; a run it made is FAILED")
    hint = f"; free space, then: python -m src.train resume={run_id}" if run_id else ""
    return f"gradreg: no space left on the device while {what}: {run}{hint}"


def in_sweep_worker() -> bool:
    """Is this a multirun job running in another process than the sweep's launcher (joblib, submitit)?"""
    from src.tracking.sweeps import sweep_context

    sweep = sweep_context()
    return bool(sweep.get("launcher_pid")) and int(sweep["launcher_pid"]) != os.getpid()


def exit_for(exc: BaseException) -> BaseException | None:
    """What `main()` raises instead of `exc`, or None to let `exc` go on (see the module docstring)."""
    from src.lifecycle.requeue import requeue_after_stop
    from src.lifecycle.signals import exit_code_if_interrupted

    requeue_after_stop(exc)  # a stop by USR2 in a submitit job: requeued (SystemExit, no result) or raises
    code = exit_code_if_interrupted(exc)
    full = (exc if isinstance(exc, DiskFull) else disk_full_error(exc)) if code is None else None
    if code is None and full is None:
        return None
    if full is not None:
        line = str(exc) if isinstance(exc, DiskFull) else disk_full_line(full, None)
        if in_sweep_worker():
            return JobStopped(line)
        print(line, file=sys.stderr)
        return SystemExit(1)
    if in_sweep_worker():
        return JobStopped(f"stopped by signal {code - 128}; the job's run is KILLED (outcome=interrupted)")
    return SystemExit(code)


def in_multirun() -> bool:
    """Is this job one of a Hydra multirun (`-m`)?"""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


@contextmanager
def exit_status() -> Iterator[None]:
    """End the process as the module docstring says, whatever `train()` raises inside this block."""
    try:
        yield
    except BaseException as exc:
        replacement = exit_for(exc)  # 130/143 after SIGINT/SIGTERM (JobStopped in a sweep worker), a full disk's line
        if replacement is not None:
            raise replacement from None
        if not isinstance(exc, UserError):
            raise  # a crash: Hydra prints its traceback, exit status 1
        if in_multirun():  # an Exception fails this job only (SystemExit would end the sweep); no traceback
            logging.getLogger(__name__).error("%s", exc)
            raise exc.with_traceback(None) from None
        print(exc, file=sys.stderr)  # the command line's answer: the message alone
        raise SystemExit(2) from None
