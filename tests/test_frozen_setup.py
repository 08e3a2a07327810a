"""A run's start-up without full garbage collections, and its start-up objects frozen while it trains
(`src/training/frozen_setup.py`): proven on the collector's own callbacks, beside the collector left as it is."""

from __future__ import annotations

import gc
import weakref

import pytest

from src.training import frozen_setup


class Node:
    """An object in a reference cycle (only the cyclic collector can free it)."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def collections():
    """The generations of the collections that run while the test does; the collector restored after it."""
    seen: list[int] = []

    def count(phase: str, info: dict) -> None:
        if phase == "start":
            seen.append(info["generation"])

    thresholds = gc.get_threshold()
    gc.collect()
    gc.callbacks.append(count)
    try:
        yield seen
    finally:
        gc.callbacks.remove(count)
        gc.set_threshold(*thresholds)
        frozen_setup._thresholds = None
        gc.unfreeze()


def start_up(n: int = 300_000) -> tuple[list[Node], weakref.ref]:
    """What a start-up does to the collector: many objects that stay, and a cycle dropped at once."""
    kept = [Node() for _ in range(n)]
    dropped = Node()
    ref = weakref.ref(dropped)
    del dropped
    return kept, ref


@pytest.mark.parametrize("off", [False, True], ids=["collector as it is", "full collections off"])
def test_a_start_up_makes_no_full_collection_and_still_frees_its_young_cycles(collections, off: bool) -> None:
    if off:
        frozen_setup.full_collections_off()
    kept, dropped = start_up()
    for _ in range(3 * gc.get_threshold()[0]):
        Node()  # young garbage: the young generations' collections come
    assert dropped() is None, "a cycle dropped at once is freed by the young generations, as before"
    assert 0 in collections
    assert (2 in collections) is not off, collections  # the collector as it is walks everything made so far
    del kept


def test_training_sees_the_start_up_frozen_and_the_collector_whole_and_the_job_end_unfreezes(collections) -> None:
    thresholds = gc.get_threshold()
    frozen_setup.full_collections_off()
    kept, _ = start_up(10_000)
    with pytest.raises(RuntimeError), frozen_setup.setup_objects_frozen():
        assert gc.get_freeze_count() >= len(kept)  # the start-up's objects: skipped by every collection now
        assert gc.get_threshold() == thresholds  # full collections again, for what training makes
        raise RuntimeError("a run that fails")
    assert gc.get_freeze_count() == 0, "however the job ends, its objects go back to the collector"
    assert gc.get_threshold() == thresholds
