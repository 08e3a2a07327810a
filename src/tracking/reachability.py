"""Fail fast when the tracking store cannot be used, before any data is loaded or any step trained.

MLflow's HTTP client retries a silent server for minutes by default; one short request here
answers the question in seconds and names the URI (credentials stripped) in the message. A server
that answers must answer as MLflow (`server_identity.py`). A sqlite store must be writable, an MLflow
database (`store_file.py`), have room (`store_space.py`) and not be held locked by another process
longer than `GRADREG_STORE_WAIT_S` (`store_lock.py`). Each refusal is one line (a `UserError`, exit 2).
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from src.settings import UserError
from src.settings.environment import DEFAULT_TIMEOUT_S, TIMEOUT_ENV, tracking_timeout
from src.tracking.redaction import redact_uri

__all__ = ["DEFAULT_TIMEOUT_S", "TIMEOUT_ENV", "TrackingUnavailable", "ensure_reachable", "probe_timeout"]


class TrackingUnavailable(UserError, RuntimeError):
    """The MLflow tracking store does not answer or cannot be written."""


def probe_timeout() -> float:
    """GRADREG_TRACKING_TIMEOUT, checked: a bad value is a ConfigError, never replaced in silence."""
    return tracking_timeout()


def without_userinfo(uri: str) -> str:
    parts = urllib.parse.urlsplit(uri)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    netloc += f":{parts.port}" if parts.port else ""
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def probe_http(uri: str, timeout: float) -> None:
    """Any HTTP answer (even 401 or 404) proves a server is there, silence or refusal does not; then the
    server must answer as MLflow (`server_identity.py`)."""
    url = without_userinfo(uri).rstrip("/") + "/health"
    start = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout):  # noqa: S310 - the user's own tracking URI
            pass
    except urllib.error.HTTPError:
        pass  # an answer: whether it is MLflow's is asked below
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise TrackingUnavailable(
            f"MLflow tracking server at {redact_uri(uri)} does not answer ({reason}; waited "
            f"{time.monotonic() - start:.1f} s, limit {timeout:g} s via {TIMEOUT_ENV}). Start the server, fix "
            "MLFLOW_TRACKING_URI, or unset it to use the project's local sqlite store. Nothing was trained."
        ) from None
    from src.tracking.server_identity import ensure_mlflow_server

    ensure_mlflow_server(without_userinfo(uri), uri, timeout)


def probe_sqlite(uri: str, writes: bool = True) -> None:
    db = Path(uri.removeprefix("sqlite:///")).expanduser().absolute()
    folder = db.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if db.exists():
        blocker, usable = db, db.is_file() and os.access(db, os.W_OK)
    else:
        blocker, usable = folder, folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)
    if not usable:
        raise TrackingUnavailable(
            f"MLflow store {redact_uri(uri)} cannot be written ({blocker} is not a writable "
            f"{'file' if blocker == db else 'folder'}). "
            "Fix MLFLOW_TRACKING_URI or unset it to use the project's local sqlite store. Nothing was trained."
        )
    from src.tracking.store_file import ensure_mlflow_file
    from src.tracking.store_lock import wait_for_write_lock
    from src.tracking.store_space import ensure_store_space

    shown = redact_uri(uri)
    ensure_mlflow_file(db, shown)
    ensure_store_space(db, shown)
    if writes:
        wait_for_write_lock(db, shown)


def ensure_reachable(uri: str, timeout: float | None = None, writes: bool = True) -> None:
    """Raise a UserError (TrackingUnavailable, or the store check's own), naming the URI without credentials,
    when the store cannot be used; `writes=False` (a read-only look, `python -m src.reap --dry-run`) does not wait
    for a sqlite store's write lock."""
    if uri.startswith(("http://", "https://")):
        probe_http(uri, probe_timeout() if timeout is None else timeout)
    elif uri.startswith("sqlite:///"):
        probe_sqlite(uri, writes)
