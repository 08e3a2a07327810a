"""SIGINT and SIGTERM end a run cleanly: stop at a step boundary, save `last.ckpt`, mark it KILLED.

How the pieces meet Lightning 2.x:
- Lightning installs its own SIGTERM handler during `fit` (it chains ours) and raises
  `SIGTERMException` after the current batch; with several ranks it broadcasts the stop from rank 0.
- SIGINT has no such path in Lightning (Ctrl-C raises KeyboardInterrupt mid-step, Lightning then
  calls `sys.exit(1)`), so the first SIGINT only records the request and `GracefulStop` raises
  `RunInterrupted` at the start of the next batch, where the state is exactly "N steps done".
- On either stop `GracefulStop.on_exception` (src/lifecycle/graceful_stop.py) saves `last.ckpt` beside
  the run's checkpoints.
- A second signal, or one outside `fit`, raises KeyboardInterrupt at once (no new checkpoint).
`tracked_run` maps all of these (see `is_interrupt`) to status KILLED, `outcome=interrupted`.

This module stays free of heavy imports: the entry point asks it about every exception, even
one raised before Lightning was ever imported. The callback lives in `src/lifecycle/graceful_stop.py`.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

HANDLED = (signal.SIGINT, signal.SIGTERM)


class RunInterrupted(Exception):
    """Raised at a step boundary after SIGINT/SIGTERM asked the run to stop."""


class StopRequest:
    """The signal state of this process: which signal asked to stop, and whether `fit` is running."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.fitting = False

    def handler(self, signum: int, frame: FrameType | None) -> None:
        first = self.signum is None
        self.signum = signum
        if not (first and self.fitting):
            raise KeyboardInterrupt(f"{signal.Signals(signum).name} received")


STOP = StopRequest()


@contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """Install the SIGINT/SIGTERM handlers for the life of a tracked run; restore the old ones after."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield STOP
        return
    STOP.signum, STOP.fitting = None, False
    previous = {s: signal.getsignal(s) for s in HANDLED}
    for s in HANDLED:
        signal.signal(s, STOP.handler)
    try:
        yield STOP
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


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
