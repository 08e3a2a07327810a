"""The operating settings read from the environment (`GRADREG_*`), checked like every other setting.

They are not experiment settings (no param of a run), so a cluster's job setup exports them once:

- `GRADREG_HEARTBEAT_S`: seconds between a run's heartbeats (default 60);
- `GRADREG_LOST_AFTER_S`: seconds of silence after which a run of another host is lost (default
  900; at least twice the heartbeat, or live runs would be closed);
- `GRADREG_REAP`: 1 or 0 (true/false, yes/no): reap lost runs at every run and sweep start;
- `GRADREG_TRACKING_TIMEOUT`: seconds the tracking store's reachability probe waits (default 5);
- `GRADREG_STORE_WAIT_S`: seconds a start (or `python -m src.reap`) waits for a sqlite store's write lock that
  another process holds (default 30), before it says who holds it (`src/tracking/store_lock.py`).

`GRADREG_RUN_ID` is set by the program itself for the DDP ranks it re-launches, not by users.
A bad value is a `ConfigError` naming the variable, its value and what is allowed (exit status 2),
never a traceback and never replaced by a default in silence. `check_environment` reports every
bad one at once, before any run exists.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

from src.settings.errors import ConfigError

HEARTBEAT_ENV, DEFAULT_HEARTBEAT_S = "GRADREG_HEARTBEAT_S", 60.0
LOST_AFTER_ENV, DEFAULT_LOST_AFTER_S = "GRADREG_LOST_AFTER_S", 900.0
REAP_ENV = "GRADREG_REAP"
TIMEOUT_ENV, DEFAULT_TIMEOUT_S = "GRADREG_TRACKING_TIMEOUT", 5.0
STORE_WAIT_ENV, DEFAULT_STORE_WAIT_S = "GRADREG_STORE_WAIT_S", 30.0
FLAGS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def env_seconds(name: str, default: float, environ: Mapping[str, str] | None = None) -> float:
    """A number of seconds > 0 (finite) from the environment, `default` when unset or empty."""
    environ = os.environ if environ is None else environ
    text = environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"{name}={text!r} is not allowed; it must be a number of seconds > 0 (default {default:g})")
    return value


def env_flag(name: str, default: bool, environ: Mapping[str, str] | None = None) -> bool:
    """1/0, true/false or yes/no from the environment, `default` when unset or empty."""
    environ = os.environ if environ is None else environ
    text = environ.get(name, "").strip().lower()
    if not text:
        return default
    if text not in FLAGS:
        raise ConfigError(f"{name}={text!r} is not allowed; it must be 1 or 0 (true/false, yes/no)")
    return FLAGS[text]


def liveness_settings(environ: Mapping[str, str] | None = None) -> tuple[float, float, bool]:
    """(heartbeat_s, lost_after_s, reap) from the environment, checked."""
    heartbeat_s = env_seconds(HEARTBEAT_ENV, DEFAULT_HEARTBEAT_S, environ)
    lost_after_s = env_seconds(LOST_AFTER_ENV, DEFAULT_LOST_AFTER_S, environ)
    reap = env_flag(REAP_ENV, True, environ)
    if lost_after_s < 2 * heartbeat_s:
        raise ConfigError(f"{LOST_AFTER_ENV}={lost_after_s:g} is not allowed; it must be at least twice "
                          f"{HEARTBEAT_ENV}={heartbeat_s:g}, or live runs on other hosts would be closed")
    return heartbeat_s, lost_after_s, reap


def tracking_timeout(environ: Mapping[str, str] | None = None) -> float:
    return env_seconds(TIMEOUT_ENV, DEFAULT_TIMEOUT_S, environ)


def store_wait(environ: Mapping[str, str] | None = None) -> float:
    return env_seconds(STORE_WAIT_ENV, DEFAULT_STORE_WAIT_S, environ)


def check_environment(environ: Mapping[str, str] | None = None) -> None:
    """Every `GRADREG_*` operating setting checked; one ConfigError listing each bad one."""
    problems = []
    for check in (liveness_settings, tracking_timeout, store_wait):
        try:
            check(environ)
        except ConfigError as err:
            problems.append(str(err))
    if problems:
        raise ConfigError("invalid environment:\n  " + "\n  ".join(problems))
