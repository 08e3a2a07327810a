"""The sweep's launcher process handles SIGINT/SIGTERM itself: its jobs stop cleanly, none starts, the
parent run is tallied and closed.

Without this, SIGTERM kills the launcher at once (its parent run stays RUNNING until the reaper calls it
`lost`, untallied, and joblib's idle workers live on), and Ctrl-C raises KeyboardInterrupt inside
joblib, which then kills its workers with SIGKILL while their runs are still writing `last.ckpt`.

`SweepStop` (a Hydra callback, `conf/hydra/default.yaml`) installs handlers in the launcher for the
launchers whose jobs are local processes (basic, joblib). On the first signal it

1. writes `<sweep dir>/STOPPED` (the signal's name): a job that has not opened its run yet refuses to
   start (`refuse_if_sweep_stopped`, called just before a run is opened), so the sweep ends after the
   jobs in flight;
2. sends SIGTERM to each job of the sweep that is RUNNING in another process of this host (the `host`,
   `pid` and `pid_start` tags of its run): they stop at their next step with `last.ckpt`, KILLED,
   `outcome=interrupted`. When the signal came to the whole process group they have it already, and a
   repeated SIGTERM changes nothing for them (`src/lifecycle/signals.py`);
3. lets the launcher wait for them; Hydra then ends the sweep with the stopped jobs' error (exit 1)
   and the sweep callback tallies the parent (KILLED, `outcome=interrupted`) and prints its line.
   joblib's workers are shut down as at every end (they ignore SIGINT/SIGTERM between jobs).

Repeated signals follow the jobs' rule: a repeated SIGTERM is ignored; a second Ctrl-C within
`GRACE_S` seconds is ignored, a later one stops the launcher at once (joblib kills its workers; the
reaper closes their runs `lost`, and `resume=<id>` continues each from its newest checkpoint).

The submitit launcher is left alone: its jobs are SLURM's, stopped and requeued by SLURM
(`src/lifecycle/requeue.py`, docs/operations.md).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from src.lifecycle.signals import GRACE_S, HANDLED
from src.settings import UserError

log = logging.getLogger(__name__)

STOP_FILE = "STOPPED"  # in the sweep dir; holds the name of the signal that stopped the sweep
LOCAL_LAUNCHERS = ("BasicLauncher", "JoblibLauncher")  # launchers whose jobs are processes of this host


class SweepStopped(UserError):
    """A job of a sweep that was stopped before the job opened its run."""


def refuse_if_sweep_stopped() -> None:
    """In a sweep job: raise `SweepStopped` when the sweep's launcher was signalled (no run is created)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return
    marker = Path(HydraConfig.get().sweep.dir) / STOP_FILE
    if marker.is_file():
        raise SweepStopped(f"the sweep was stopped ({marker.read_text().strip() or 'a signal'}) before job "
                           f"{HydraConfig.get().job.num} opened its run: not started")


def running_job_pids(sweep_dir: Path) -> list[int]:
    """Pids of this host's processes (other than this one) that drive a RUNNING job run of the sweep."""
    from src.tracking.client import client
    from src.tracking.liveness import HOST_TAG, PID_START_TAG, PID_TAG, hostname, process_start
    from src.tracking.sweep_tally import child_runs
    from src.tracking.sweeps import read_sweep_file

    info = read_sweep_file(sweep_dir)
    if not info.get("parent_run_id"):
        return []
    pids = []
    for run in child_runs(client(info.get("tracking_uri")), info["parent_run_id"]):
        tags = run.data.tags
        if run.info.status != "RUNNING" or tags.get(HOST_TAG) != hostname() or not tags.get(PID_TAG, "").isdigit():
            continue
        pid = int(tags[PID_TAG])
        if pid != os.getpid() and process_start(pid) == tags.get(PID_START_TAG):
            pids.append(pid)
    return pids


class SweepStop(Callback):
    """Handles SIGINT/SIGTERM in the sweep's launcher (see the module docstring)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.sweep_dir: Path | None = None
        self.signum: int | None = None
        self.first_at = 0.0
        self.previous: dict[int, Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        """Launchers pickle callbacks into their workers: ship the setting only."""
        return {"enabled": self.enabled, "sweep_dir": None, "signum": None, "first_at": 0.0, "previous": {}}

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        launcher = str(config.hydra.launcher.get("_target_", "")).rsplit(".", 1)[-1]
        if not self.enabled or launcher not in LOCAL_LAUNCHERS:
            return
        if threading.current_thread() is not threading.main_thread():
            return
        self.sweep_dir = Path(str(config.hydra.sweep.dir))
        self.previous = {s: signal.getsignal(s) for s in HANDLED}
        for s in HANDLED:
            signal.signal(s, self.handler)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)
        self.previous = {}

    def handler(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.signum is not None:
            waited = time.monotonic() - self.first_at
            if signum == signal.SIGINT and waited >= GRACE_S:
                raise KeyboardInterrupt(f"{name} received again {waited:.0f} s after the first: stopping now")
            sys.stderr.write(f"gradreg: {name} received again; the sweep is still stopping cleanly\n")
            return
        self.signum, self.first_at = signum, time.monotonic()
        sweep_dir = self.sweep_dir
        if sweep_dir is None:
            return
        try:
            (sweep_dir / STOP_FILE).write_text(name + "\n")
        except OSError as err:
            sys.stderr.write(f"gradreg: could not write {sweep_dir / STOP_FILE} ({err}); jobs not started may run\n")
        sys.stderr.write(f"gradreg: {name}: stopping the sweep; its running jobs stop at their next step with "
                         f"last.ckpt, no new job starts (Ctrl-C again after {GRACE_S:g} s: stop at once)\n")
        threading.Thread(target=self.stop_jobs, args=(sweep_dir,), name="sweep-stop", daemon=True).start()

    @staticmethod
    def stop_jobs(sweep_dir: Path) -> None:
        """SIGTERM to every RUNNING job of the sweep in another process of this host (a thread, off the handler)."""
        try:
            pids = running_job_pids(sweep_dir)
        except Exception as err:  # noqa: BLE001 - the jobs got the group's signal, or the reaper closes them
            log.warning("Could not list the sweep's running jobs (%s: %s)", type(err).__name__, err)
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
