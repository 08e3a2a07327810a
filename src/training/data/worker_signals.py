"""DataLoader workers that outlive a stop signal: the process that owns the run decides when to stop.

SIGTERM or SIGINT sent to a whole process group (SLURM cancelling or preempting a job, Ctrl-C in a
terminal, `kill -- -<pgid>`) reaches every DataLoader worker too. PyTorch's worker dies of SIGTERM (its
C handler re-raises it) and of SIGINT, and the main process then fails the next batch with "DataLoader
worker exited unexpectedly": the run would end FAILED, without the checkpoint its clean stop writes at
the next step boundary. So workers ignore SIGINT, SIGTERM and USR2 (submitit's preemption signal):

- `worker_init` sets them to SIG_IGN in each worker, then runs Lightning's worker seeding as Lightning
  itself would have (it adds its own init function only where none is set);
- `SignalSafeLoader` blocks the three signals in the main thread while it forks the workers, so a worker
  is never killed in the instant between its fork and `worker_init` (the signal waits, pending, and
  setting SIG_IGN discards it). The main process loses nothing: another of its threads takes the signal,
  or it is delivered as soon as the fork returns.

Why ignoring, rather than letting workers die and tolerating it in the main process: a worker's death
is reported from PyTorch's SIGCHLD handler, as an exception raised wherever the main thread happens to
be (mid-step, mid-save); the state at that point is not a step boundary, so no checkpoint taken there
could be trusted, and every batch in flight would be lost. Ignoring keeps the workers serving batches
until the run stops at its step boundary and shuts them down itself. A worker whose parent dies
exits on its own (PyTorch's watchdog checks every 5 s), and SIGKILL still ends it.

The price of ignoring SIGTERM: `multiprocessing` ends a process's daemonic children at exit with SIGTERM
and then joins them, so a process leaving with an iterator still alive (a stopped run's, kept by a
traceback or a reference cycle) would wait for its workers for ever, and they for it. That hung a sweep's
joblib worker on exit after the sweep was preempted. So every iterator of these loaders is tracked (weakly),
and `shutdown_live_workers` sends its workers PyTorch's own stop (what the iterator does when it is
collected): at the end of each job (`src/train.py`) and, before `multiprocessing` joins, at process exit.
"""

from __future__ import annotations

import multiprocessing.util
import os
import signal
import weakref
from typing import Any

from torch.utils.data import DataLoader

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)
LIVE_ITERATORS: weakref.WeakSet[Any] = weakref.WeakSet()  # this process's iterators with worker processes
_exit_hook_pid: int | None = None  # the process that registered `shutdown_live_workers` to run at its exit


def shutdown_live_workers() -> int:
    """Stop the workers of every live iterator of a `SignalSafeLoader` in this process (PyTorch's own shutdown:
    a stop message, a join); returns how many iterators had to be shut down."""
    stopped = 0
    for iterator in list(LIVE_ITERATORS):
        LIVE_ITERATORS.discard(iterator)
        if getattr(iterator, "_shutdown", True):
            continue  # shut down already (or never started)
        try:
            iterator._shutdown_workers()  # what its __del__ and Lightning's loader reset call
        except Exception:  # noqa: BLE001, S112 - a half-built iterator: its workers exit with this process
            continue
        stopped += 1
    return stopped


def _shut_down_at_exit() -> None:
    """Run `shutdown_live_workers` at this process's exit, before `multiprocessing` joins its children."""
    global _exit_hook_pid
    if _exit_hook_pid != os.getpid():  # once per process (a forked or spawned one registers its own)
        multiprocessing.util.Finalize(None, shutdown_live_workers, exitpriority=100)
        _exit_hook_pid = os.getpid()


def worker_init(worker_id: int) -> None:
    """A DataLoader worker's init function: stop signals ignored, then Lightning's seeding when it is on."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    if int(os.environ.get("PL_SEED_WORKERS", 0)):  # set by seed_everything(workers=True)
        from lightning_fabric.utilities.seed import pl_worker_init_function

        pl_worker_init_function(worker_id)  # the rank from rank_zero_only.rank, as Lightning's own default


def worker_start_method(num_workers: int) -> str | None:
    """`fork` for DataLoader workers wherever the platform has it (Linux: its default anyway), else the default.

    Inside a joblib (loky) worker the default start method is not `fork`: PyTorch would then pickle the
    data set into each worker, which fails for the in-memory data sets (the sweep's job fails with
    "Please call `iter(combined_loader)` first"). Forked workers also inherit the blocked signals that
    `SignalSafeLoader` relies on."""
    import multiprocessing

    return "fork" if num_workers > 0 and "fork" in multiprocessing.get_all_start_methods() else None


class SignalSafeLoader(DataLoader):
    """A DataLoader whose workers ignore stop signals from birth (see the module docstring)."""

    def _get_iterator(self) -> Any:
        if self.num_workers == 0:
            return super()._get_iterator()
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            iterator = super()._get_iterator()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        _shut_down_at_exit()
        LIVE_ITERATORS.add(iterator)
        return iterator
