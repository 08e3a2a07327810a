"""Python's full garbage collections kept off a run's start-up, and off the objects built there while it trains.

Why: before its first step a run imports torch, Lightning, torchmetrics, MLflow (SQLAlchemy's mappers) and
Hydra, and builds its config, store client, data, model and trainer: several hundred thousand objects the
collector tracks (`len(gc.get_objects())`). While they are being created the collector keeps starting full
collections (one each time the tracked objects grow by a quarter), each walking everything made so far, and
none of it is garbage: in a LeNet-5 default run those collections took more than a CPU-second before the first
step (`gc.callbacks`, Python 3.11). So:

- the entry point (`python -m src.train`) stops full collections as it starts (`full_collections_off`): the
  young generations are still collected, so the cycles start-up makes and drops at once (Hydra's config nodes,
  for one) are freed as before; what survives them is not walked again;
- when training starts, `setup_objects_frozen` moves everything that exists to the permanent generation
  (`gc.freeze()`, Python's documented API for long-lived start-up objects) and gives the collector its
  thresholds back: objects made while training are collected as before, and reference counting frees
  whatever is not in a cycle as always (the collector only finds cycles);
- the freeze ends with the job, however it ends (`gc.unfreeze()`): a process that runs job after job (a sweep)
  gives the previous job's objects back to the collector instead of keeping their cycles for ever.

Old cycles that become garbage during start-up wait for the job's end; `bench/default_run.py` reports the run's
peak RSS beside its CPU time.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

NEVER = 2**31 - 1  # young-generation collections between full ones: none while starting
_thresholds: tuple[int, int, int] | None = None  # the collector's own, while full collections are off


def full_collections_off() -> None:
    """No full collection until training starts (`setup_objects_frozen` restores them): call first thing."""
    global _thresholds
    if _thresholds is None:
        _thresholds = gc.get_threshold()
        gc.set_threshold(_thresholds[0], _thresholds[1], NEVER)


@contextlib.contextmanager
def setup_objects_frozen() -> Iterator[None]:
    """What exists now frozen out of the collector, its thresholds back, for the `with` block; unfrozen after."""
    global _thresholds
    gc.freeze()
    if _thresholds is not None:
        gc.set_threshold(*_thresholds)
        _thresholds = None
    try:
        yield
    finally:
        gc.unfreeze()
