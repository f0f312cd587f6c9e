"""What a change feed tells a cache (``Invalidations``), held to what the feed relies on.

After ``invalidate(key)`` the key's copy is gone and a read that started before it (its
``token``) cannot put a copy back; other keys keep theirs. After ``clear()`` that holds for every
key. Invalidating a key never cached is harmless, and a read that starts afterwards caches as
usual. Both are plain calls (the feed's loop makes them between two changes): they never raise
and never wait.

The storage's ``DocumentCache`` is the one implementation: a cache lives in the process's
memory, so there is no real service to hold a twin to; a new cache joins ``CACHES``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from workers.storage.cache import DocumentCache
from workers.storage.ports import Invalidations

CACHES: dict[str, Callable[[], DocumentCache]] = {"document": lambda: DocumentCache(ttl_s=60)}


@pytest.fixture(params=sorted(CACHES))
def cache(request: pytest.FixtureRequest) -> DocumentCache:
    return CACHES[request.param]()


def told(cache: DocumentCache) -> Invalidations:
    """The cache as the change feed sees it: only the port."""
    return cache


def test_an_invalidated_key_is_gone_and_only_it(cache: DocumentCache) -> None:
    for key in ("g1", "g2"):
        assert cache.put(key, {"_id": key, "version": 1}, cache.token())
    told(cache).invalidate("g1")
    assert cache.get("g1") is None
    assert cache.get("g2") == {"_id": "g2", "version": 1}


def test_a_read_that_started_before_an_invalidation_cannot_put_its_copy_back(
    cache: DocumentCache,
) -> None:
    before = cache.token()
    told(cache).invalidate("g1")
    assert cache.put("g1", {"_id": "g1", "version": 1}, before) is False
    assert cache.get("g1") is None
    assert cache.put("g2", {"_id": "g2", "version": 1}, before)  # another key: not concerned
    after = cache.token()
    assert cache.put("g1", {"_id": "g1", "version": 2}, after)  # a read begun after caches
    assert cache.get("g1") == {"_id": "g1", "version": 2}


def test_clear_drops_every_key_and_every_read_begun_before(cache: DocumentCache) -> None:
    for key in ("g1", "g2"):
        cache.put(key, {"_id": key}, cache.token())
    before = cache.token()
    told(cache).clear()
    assert len(cache) == 0 and cache.get("g1") is None and cache.get("g2") is None
    assert cache.put("g3", {"_id": "g3"}, before) is False  # never seen, but read before
    assert cache.put("g3", {"_id": "g3"}, cache.token())


def test_invalidating_what_was_never_cached_is_harmless(cache: DocumentCache) -> None:
    told(cache).invalidate("nobody")
    told(cache).invalidate("")
    told(cache).clear()
    told(cache).clear()
    assert len(cache) == 0
    assert cache.put("g1", {"_id": "g1"}, cache.token()) and cache.get("g1") == {"_id": "g1"}


def test_many_invalidations_stay_bounded_and_still_refuse_older_reads() -> None:
    """A cache forgets which keys were invalidated past its size: it then refuses every read
    begun before, never one it should refuse less."""
    small = DocumentCache(ttl_s=60, max_entries=3)
    before = small.token()
    for n in range(10):
        told(small).invalidate(f"g{n}")
    assert all(small.put(f"g{n}", {}, before) is False for n in range(12))
    assert small.put("g0", {}, small.token())
