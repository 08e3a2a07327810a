"""Is the HTTP server at MLFLOW_TRACKING_URI an MLflow tracking server, or something else that answers HTTP?

The reachability probe (`reachability.py`) used to accept any HTTP answer: a URI pointing at another web server
(a wrong port, a proxy's landing page, a path prefix left out) passed, the data set was loaded, and the first
MLflow call failed with the HTML body of a 404. Two cheap requests tell them apart before any run exists:

1. `GET /health`: MLflow answers 200 with the body `OK`;
2. else `GET /api/2.0/mlflow/experiments/search?max_results=1`: MLflow answers JSON (the experiments, or an
   `error_code`), whatever its version and however it is deployed behind a proxy.

A 401 or 403 on either (a server behind authentication) cannot be judged without the credentials and is let
through; MLflow's own client then reports a wrong login.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from src.settings import UserError
from src.tracking.redaction import redact_uri

API_PROBE = "/api/2.0/mlflow/experiments/search?max_results=1"
AUTH_STATUSES = (401, 403)


class NotMlflowServer(UserError, RuntimeError):
    """The tracking URI answers HTTP, but not as MLflow."""


def fetch(url: str, timeout: float) -> tuple[int, str, bytes]:
    """(status, content type, first 4 KiB of the body) of a GET, HTTP errors included."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 - the user's own tracking URI
            return answer.status, answer.headers.get("Content-Type", ""), answer.read(4096)
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Content-Type", "") if err.headers else "", err.read(4096)


def looks_like_mlflow_json(body: bytes) -> bool:
    try:
        answer = json.loads(body)
    except ValueError:
        return False
    return isinstance(answer, dict) and ("experiments" in answer or "error_code" in answer or answer == {})


def describe(status: int, content_type: str) -> str:
    return f"{status} {content_type.split(';')[0] or 'no content type'}"


def ensure_mlflow_server(base_url: str, uri: str, timeout: float) -> None:
    """Raise NotMlflowServer (one line: what each probe got, what to do) unless `base_url` answers as MLflow.
    `base_url`: the URI without credentials; `uri`: as the user gave it (shown with credentials redacted)."""
    base = base_url.rstrip("/")
    seen = []
    for path in ("/health", API_PROBE):
        try:
            status, content_type, body = fetch(base + path, timeout)
        except (urllib.error.URLError, OSError, ValueError):
            return  # the reachability probe judged the connection; a timeout here is not evidence
        if status in AUTH_STATUSES:
            return
        if path == "/health" and status == 200 and body.strip() == b"OK":
            return
        if path == API_PROBE and looks_like_mlflow_json(body):
            return
        seen.append(f"GET {path.split('?')[0]}: {describe(status, content_type)}")
    raise NotMlflowServer(
        f"MLFLOW_TRACKING_URI={redact_uri(uri)} answers HTTP but is not an MLflow tracking server "
        f"({'; '.join(seen)}). Point it at the `mlflow server` URL (with its path prefix, if any), or unset it to "
        "use the project's local sqlite store. Nothing was trained."
    )
