"""The MLflow client every part of the project uses: lock-retrying on sqlite, batched writes, paged search."""

from __future__ import annotations

import functools
import math
import random
import time
from collections.abc import Iterable, Mapping
from typing import Any

from src.tracking.store import tracking_uri, use_wal_journal

LOCKED_ERRORS = ("database is locked", "database table is locked")  # sqlite's SQLITE_BUSY / SQLITE_LOCKED
# MLflow's `log_inputs` looks a data set up and then inserts it: two jobs of one sweep logging the same split at
# once (WAL lets both read before either commits) both insert, and the loser fails on the table's unique key.
# Its transaction was rolled back; the repeat finds the winner's row and links to it.
RACED_INSERTS = ("UNIQUE constraint failed: datasets.",)
MAX_PARAM_LENGTH = 6000  # MLflow's limit for a param value


def retry_on_locked(call, *args: Any, attempts: int = 8, base_delay_s: float = 0.2, **kwargs: Any) -> Any:  # noqa: ANN001
    """`call(*args, **kwargs)`, retried with jittered exponential back-off while sqlite says it is locked
    (or a shared row's insert lost a race, `RACED_INSERTS`).

    MLflow already waits 20 s for a busy database, but sqlite refuses at once (no wait) when a
    read transaction must upgrade to a write while another process writes: parallel sweep jobs
    hit this. The failed transaction was rolled back, so repeating the call is safe.
    """
    for attempt in range(attempts):
        try:
            return call(*args, **kwargs)
        except Exception as exc:
            if attempt == attempts - 1 or not any(msg in str(exc) for msg in LOCKED_ERRORS + RACED_INSERTS):
                raise
            time.sleep(base_delay_s * 2**attempt * (0.5 + random.random()))
    raise AssertionError("unreachable")


class LockRetryingClient:
    """An `MlflowClient` whose every method call goes through `retry_on_locked`."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_inner":  # unpickling, copying: no inner client yet
            raise AttributeError(name)
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        @functools.wraps(attr)
        def call(*args: Any, **kwargs: Any) -> Any:
            return retry_on_locked(attr, *args, **kwargs)

        return call


def client(uri: str | None = None) -> LockRetryingClient:
    """A client of the store (default: `tracking_uri()`) that survives sqlite lock contention."""
    from mlflow.tracking import MlflowClient  # imported lazily (3 s)

    use_wal_journal()  # before its first connection: sqlite stores on local disks in WAL (`store.py`)
    return LockRetryingClient(MlflowClient(tracking_uri=uri or tracking_uri()))


def search_all_runs(mlflow_client, filter_string: str = "", experiment_ids: list[str] | None = None) -> list[Any]:  # noqa: ANN001
    """Every run matching `filter_string` (all pages), in the given experiments or all of them."""
    if experiment_ids is None:
        experiment_ids = [e.experiment_id for e in mlflow_client.search_experiments()]
    runs: list[Any] = []
    token = None
    while True:
        page = mlflow_client.search_runs(experiment_ids, filter_string, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def log_batch(
    mlflow_client: Any,
    run_id: str,
    *,
    params: Mapping[str, str] | None = None,
    tags: Mapping[str, Any] | None = None,
    metrics: Iterable[tuple[str, float, int]] = (),
) -> None:
    """One call for many values (MLflow chunks it); each single call costs ~9 ms on sqlite.

    `metrics` are (key, value, step) rows, several steps of a key allowed; non-finite values are
    left out (MLflow stores them, and its UI then cannot draw the metric).
    """
    from mlflow.entities import Metric, Param, RunTag

    ts = int(time.time() * 1000)
    rows = [Metric(k, float(v), ts, int(step)) for k, v, step in metrics if math.isfinite(float(v))]
    if not (rows or params or tags):
        return
    mlflow_client.log_batch(
        run_id,
        params=[Param(k, v[:MAX_PARAM_LENGTH]) for k, v in (params or {}).items()],
        tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()],
        metrics=rows,
    )
