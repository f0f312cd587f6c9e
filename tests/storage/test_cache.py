"""The read-through cache: correct across processes through the change stream, TTL-only without."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from tests.storage.helpers import Document, poll
from workers.adapters.mongo import MongoDocuments, connect, database
from workers.storage import CachePolicy, DocumentDeleted, EventSourcedStorage
from workers.storage.cache import DocumentCache


@pytest.fixture
async def pair(
    db: AsyncDatabase[Document], other_db: AsyncDatabase[Document]
) -> AsyncIterator[tuple[EventSourcedStorage, EventSourcedStorage]]:
    """Two storages of one collection on two clients, as two processes would have them."""
    here = EventSourcedStorage(MongoDocuments(db, "games"), cache=CachePolicy(ttl_s=60))
    there = EventSourcedStorage(MongoDocuments(other_db, "games"), cache=CachePolicy(ttl_s=60))
    await there.find_one_and_upsert({"_id": "g1", "gold": 1}, client_id="game-server")
    yield here, there
    await here.close()
    await there.close()


def _gain(game: Document) -> Document:
    return {**game, "gold": game["gold"] + 1}


async def test_a_change_through_another_client_invalidates_the_cached_copy(
    pair: tuple[EventSourcedStorage, EventSourcedStorage],
) -> None:
    here, there = pair
    assert (await here.get("g1"))["version"] == 1
    assert (await here.get("g1"))["version"] == 1
    stats = here.cache_stats()
    assert stats is not None and (stats.hits, stats.misses, stats.watch) == (1, 1, "watching")

    await there.find_one_and_update("g1", _gain, client_id="admin-panel")

    async def fresh() -> bool:
        return bool((await here.get("g1"))["version"] == 2)

    await poll(fresh, what="the other client's change reaching this cache")
    stats = here.cache_stats()
    assert stats is not None and stats.invalidations >= 1

    await there.delete_one("g1", client_id="admin-panel")

    async def gone() -> bool:
        try:
            await here.get("g1")
        except DocumentDeleted:
            return True
        return False

    await poll(gone, what="the delete reaching this cache")


async def test_own_changes_are_read_back_at_once(
    pair: tuple[EventSourcedStorage, EventSourcedStorage],
) -> None:
    here, _ = pair
    await here.get("g1")
    doc, _ = await here.find_one_and_update("g1", _gain, client_id="game-server")
    assert await here.get("g1") == doc
    copy = await here.get("g1")
    copy["gold"] = 1_000  # callers get copies: mutating one does not change the cache
    assert (await here.get("g1"))["gold"] == 2


async def test_an_idle_change_stream_outlives_the_client_timeout(
    stack: Any, db: AsyncDatabase[Document], other_db: AsyncDatabase[Document]
) -> None:
    impatient = connect(stack.urls.mongo_url, timeout_ms=200)  # timeoutMS 400 ms
    here = EventSourcedStorage(
        MongoDocuments(database(impatient, db.name), "games"), cache=CachePolicy(ttl_s=60)
    )
    there = EventSourcedStorage(MongoDocuments(other_db, "games"))
    try:
        await there.find_one_and_upsert({"_id": "g1", "gold": 1}, client_id="game-server")
        await here.get("g1")

        async def resumed_twice() -> bool:
            stats = here.cache_stats()
            return stats is not None and stats.stream_resumes >= 2

        await poll(resumed_twice, what="the idle stream timing out and resuming")
        await there.find_one_and_update("g1", _gain, client_id="admin-panel")

        async def fresh() -> bool:
            return bool((await here.get("g1"))["version"] == 2)

        await poll(fresh, what="a change after the resumes invalidating the cache")
        stats = here.cache_stats()
        assert stats is not None and stats.watch == "watching" and stats.invalidations >= 1
    finally:
        await here.close()
        await impatient.close()


async def test_without_change_streams_entries_live_out_their_ttl(
    standalone_db: AsyncDatabase[Document], standalone_url: str
) -> None:
    here = EventSourcedStorage(MongoDocuments(standalone_db, "games"), cache=CachePolicy(ttl_s=0.5))
    other_client = connect(standalone_url, timeout_ms=5_000)
    there = EventSourcedStorage(MongoDocuments(database(other_client, standalone_db.name), "games"))
    try:
        await there.find_one_and_upsert({"_id": "g1", "gold": 1}, client_id="game-server")
        assert (await here.get("g1"))["version"] == 1
        stats = here.cache_stats()
        assert stats is not None and stats.watch == "unsupported"
        await there.find_one_and_update("g1", _gain, client_id="admin-panel")
        assert (await here.get("g1"))["version"] == 1  # stale, as documented, until the TTL ends

        async def expired() -> bool:
            return bool((await here.get("g1"))["version"] == 2)

        await poll(expired, timeout_s=3, what="the cached copy expiring after its TTL")
    finally:
        await here.close()
        await other_client.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_read_that_started_before_an_invalidation_is_not_cached() -> None:
    cache = DocumentCache(10)
    token = cache.token()
    cache.invalidate("g1")  # a change lands while the read is in flight
    assert cache.put("g1", {"v": 1}, token) is False and cache.get("g1") is None
    assert cache.put("g1", {"v": 2}, cache.token()) is True
    assert cache.get("g1") == {"v": 2}


def test_entries_expire_and_the_least_recently_used_go_first() -> None:
    clock = FakeClock()
    cache = DocumentCache(10, max_entries=2, clock=clock)
    for key in ("a", "b"):
        cache.put(key, {"k": key}, cache.token())
    assert cache.get("a") is not None  # a is now more recent than b
    cache.put("c", {"k": "c"}, cache.token())
    assert cache.get("b") is None and cache.get("a") is not None and len(cache) == 2
    clock.now = 10.0
    assert cache.get("a") is None and cache.get("c") is None


def test_forgetting_invalidations_stays_safe() -> None:
    cache = DocumentCache(10, max_entries=2)
    token = cache.token()
    for key in ("a", "b", "c"):  # the third overflows the record of invalidated keys
        cache.invalidate(key)
    assert cache.put("z", {}, token) is False  # forgotten keys count as invalidated
    assert cache.put("z", {}, cache.token()) is True
