"""A worker's cyclic garbage collector (``workers.runtime.collector``)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from workers.runtime.collector import (
    STARTING_THRESHOLD,
    collect_less,
    collect_rarely,
    freeze_loaded,
)


@pytest.fixture
def restored_gc() -> Iterator[None]:
    """The test process's collector as it was, whatever the test did to it: its thresholds, and
    what collection left frozen (``tests/conftest.py``) frozen again."""
    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)
    if frozen:
        gc.freeze()


def test_a_worker_freezes_its_startup_and_collects_less_often(restored_gc: None) -> None:
    older = gc.get_threshold()[1:]
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    collect_less(50_000)
    assert gc.get_threshold() == (50_000, *older)
    assert gc.get_freeze_count() > 0
    gc.collect()
    assert gc.get_freeze_count() > 0  # frozen objects stay out of every collection


def test_zero_keeps_pythons_defaults(restored_gc: None) -> None:
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    collect_less(0)
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


def test_a_cycle_made_after_the_freeze_is_still_collected(restored_gc: None) -> None:
    collect_less(50_000)

    class Node:
        other: object = None

    a, b = Node(), Node()
    a.other, b.other = b, a
    del a, b
    assert gc.collect() >= 2


def test_a_start_collects_rarely_then_the_running_threshold_is_set(restored_gc: None) -> None:
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    collect_rarely()
    assert gc.get_threshold() == (STARTING_THRESHOLD, 10, 10)
    collect_less(50_000)
    assert gc.get_threshold() == (50_000, 10, 10)
    assert gc.get_freeze_count() > 0


def test_zero_after_a_rare_start_gives_back_the_thresholds_before_it(restored_gc: None) -> None:
    gc.unfreeze()
    gc.set_threshold(900, 12, 11)
    collect_rarely()
    collect_rarely()  # twice: what it gives back is still the thresholds before the first
    collect_less(0)
    assert gc.get_threshold() == (900, 12, 11)
    assert gc.get_freeze_count() == 0


def unreachable_cycle() -> weakref.ref[object]:
    """Two objects that refer to each other and nothing else: only a collection frees them."""

    class Node:
        other: object = None

    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_the_start_s_last_collection_walks_only_what_came_after_the_imports(
    restored_gc: None,
) -> None:
    gc.unfreeze()
    collect_rarely()
    loaded = unreachable_cycle()
    freeze_loaded()
    started = unreachable_cycle()
    collect_less(50_000)
    assert started() is None  # the start's garbage: collected before the freeze
    assert loaded() is not None  # frozen with what the imports built, out of every collection
