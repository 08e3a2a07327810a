"""SIGINT, SIGTERM (and, in a submitit job, USR2) end a run cleanly: stop at a step boundary, save
`last.ckpt`, mark it KILLED.

How the pieces meet Lightning 2.x:
- Lightning installs its own SIGTERM handler during `fit` (it chains ours) and raises
  `SIGTERMException` after the current batch; with several ranks it broadcasts the stop from rank 0.
- SIGINT and USR2 have no such path in Lightning (Ctrl-C raises KeyboardInterrupt mid-step, Lightning
  then calls `sys.exit(1)`), so the first one only records the request and `GracefulStop` raises
  `RunInterrupted` at the start of the next batch, where the state is exactly "N steps done".
- On either stop `GracefulStop.on_exception` (src/lifecycle/graceful_stop.py) saves `last.ckpt` beside
  the run's checkpoints.
`tracked_run` maps all of these (see `is_interrupt`) to status KILLED, `outcome=interrupted`.

The rule for repeated signals (a preempted SLURM job gets SIGTERM twice within milliseconds, a process
group's signal reaches every process, a launcher forwards the one it got):

- the **first** SIGINT/SIGTERM/USR2 asks for the clean stop; outside `fit` (nothing to checkpoint) it
  stops at once;
- a repeated **SIGTERM or USR2** never hurries the stop: whoever sends them follows with SIGKILL when
  it stops waiting (SLURM after `KillWait`), and a second one must not cost the checkpoint;
- a repeated **SIGINT** within `GRACE_S` seconds of the first is ignored too (one Ctrl-C reaching the
  whole group, or pressed twice by reflex); one later than that is a person insisting: it raises
  KeyboardInterrupt at once (the newest complete checkpoint stays whole: saves are atomic).

USR2 is submitit's "you are about to be preempted or timed out" (SLURM's `--signal=USR2@<s>`): it is
taken over only where submitit installed a handler for it, and once the run is closed with its
checkpoint, that handler runs (`src/lifecycle/requeue.py`): submitit requeues the job, which then
continues the same run.

A process forked while these handlers are installed (a DataLoader worker, before its own init
function sets them aside) inherits them: there they do nothing (`StopRequest.pid`).

This module stays free of heavy imports: the entry point asks it about every exception, even
one raised before Lightning was ever imported. The callback lives in `src/lifecycle/graceful_stop.py`.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

HANDLED = (signal.SIGINT, signal.SIGTERM)
REQUEUE_SIGNAL = signal.SIGUSR2  # submitit's preemption / time-out signal
GRACE_S = 5.0  # seconds after the first signal during which a repeated SIGINT is ignored


class RunInterrupted(Exception):
    """Raised at a step boundary after SIGINT/SIGTERM/USR2 asked the run to stop."""


class StopRequest:
    """The signal state of this process: which signal asked to stop, when, and whether `fit` is running."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.first_at = 0.0  # time.monotonic() of the first signal
        self.fitting = False
        self.pid = os.getpid()  # the process that installed the handlers; a forked child ignores them
        self.requeue: Callable[[int, Any], Any] | None = None  # submitit's USR2 handler, run once the run is closed

    def reset(self) -> None:
        self.signum, self.first_at, self.fitting, self.pid, self.requeue = None, 0.0, False, os.getpid(), None

    def handler(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self.pid:
            return  # a forked DataLoader worker: the process that owns the run decides
        name = signal.Signals(signum).name
        if self.signum is None:
            self.signum, self.first_at = signum, time.monotonic()
            if not self.fitting:
                raise KeyboardInterrupt(f"{name} received")
            return
        waited = time.monotonic() - self.first_at
        if signum == signal.SIGINT and waited >= GRACE_S:
            raise KeyboardInterrupt(f"{name} received again {waited:.0f} s after the first: stopping now")
        sys.stderr.write(f"gradreg: {name} received again after {waited:.1f} s: still stopping cleanly "
                         f"(last.ckpt first; Ctrl-C again after {GRACE_S:g} s stops at once)\n")

    @property
    def requeue_asked(self) -> bool:
        """Did USR2 (submitit's preemption signal) ask for this stop, with submitit's handler to requeue the job?"""
        return self.signum == REQUEUE_SIGNAL and self.requeue is not None


STOP = StopRequest()


def submitit_handler(handler: Any) -> bool:
    """Is this a handler submitit installed (its preemption handler for USR2)?"""
    return callable(handler) and "submitit" in str(getattr(handler, "__module__", "") or type(handler).__module__)


@contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """Install the handlers for the life of a tracked run; restore the old ones after.

    In a sweep worker process (joblib's, submitit's) SIGINT and SIGTERM are left ignored after the run:
    an idle worker killed by the sweep's signal would make joblib kill the workers whose runs are still
    saving their checkpoints. The launcher decides what the sweep does (`src/lifecycle/sweep_stop.py`)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield STOP
        return
    STOP.reset()
    handled = list(HANDLED)
    if submitit_handler(signal.getsignal(REQUEUE_SIGNAL)):
        STOP.requeue = signal.getsignal(REQUEUE_SIGNAL)
        handled.append(REQUEUE_SIGNAL)
    previous = {s: signal.getsignal(s) for s in handled}
    for s in handled:
        signal.signal(s, STOP.handler)
    try:
        yield STOP
    finally:
        idle = ignored_between_jobs()
        for s, handler in previous.items():
            signal.signal(s, signal.SIG_IGN if s in HANDLED and idle else handler)


def ignored_between_jobs() -> bool:
    """Is this process a sweep's worker (not the launcher itself)? Then it ignores SIGINT/SIGTERM between jobs."""
    try:
        from src.tracking.sweeps import sweep_context

        launcher_pid = sweep_context().get("launcher_pid")
        return bool(launcher_pid) and int(launcher_pid) != os.getpid()
    except Exception:  # noqa: BLE001 - no Hydra config (a test, a notebook): restore the old handlers
        return False


def is_interrupt(exc: BaseException) -> bool:
    """Did this exception end the run because someone asked it to stop (not because something broke)?"""
    lightning_exceptions = sys.modules.get("pytorch_lightning.utilities.exceptions")  # loaded if Lightning ran
    sigterm = (lightning_exceptions.SIGTERMException,) if lightning_exceptions else ()
    if isinstance(exc, (KeyboardInterrupt, RunInterrupted, *sigterm)):
        return True
    return isinstance(exc, SystemExit) and STOP.signum is not None  # Lightning's sys.exit(1) after Ctrl-C


def exit_code_if_interrupted(exc: BaseException) -> int | None:
    """The shell's exit status for a run stopped by a signal (128 + signal number), else None."""
    if not is_interrupt(exc):
        return None
    return 128 + int(STOP.signum or signal.SIGINT)
