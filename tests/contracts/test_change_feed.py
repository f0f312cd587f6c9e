"""The change feed a document store gives a cache (``ChangeFeed``): one contract, on the memory
collection and on a MongoDB change stream.

``ensure`` starts following (True: caching is safe) and first clears what was cached before;
asked again it starts nothing more. Every writer's change of a document, this process's or
another's, invalidates that document's key and no other. ``close`` stops following and clears
the cache: nothing reaches it after. A store that does not answer is no error: ``ensure``
answers False (do not cache) and the feed stays off, ready to be asked again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

import pytest

from tests.contracts.conftest import unreachable_mongo
from tests.contracts.documents import Seen, change
from tests.waiting import wait_for
from workers.adapters.memory import MemoryDocuments
from workers.adapters.mongo import MongoDocuments, connect, database
from workers.devtools.embedded import EmbeddedStack
from workers.storage import DocumentStore

SEEN_S = 30.0
"""The bound on a change reaching a feed (a change stream delivers within a second or so)."""


@dataclass
class Watched:
    store: DocumentStore
    other: Callable[[], DocumentStore]
    """Another writer on the same documents (another process)."""
    away: Callable[[], AbstractAsyncContextManager[DocumentStore]]
    """The same kind of store, not answering."""


@pytest.fixture(params=["memory", "mongo"])
async def w(
    request: pytest.FixtureRequest, stack: EmbeddedStack, unique_name: str
) -> AsyncIterator[Watched]:
    if request.param == "memory":
        store = MemoryDocuments("games")

        @asynccontextmanager
        async def memory_away() -> AsyncIterator[DocumentStore]:
            down = MemoryDocuments("games")
            down.down()
            yield down

        yield Watched(store, store.handle, memory_away)
        return
    url = stack.urls.mongo_url

    @asynccontextmanager
    async def mongo_away() -> AsyncIterator[DocumentStore]:
        async with unreachable_mongo(url, unique_name) as db:
            yield MongoDocuments(db, "games")

    client = connect(url, timeout_ms=5000)
    db = database(client, unique_name)
    try:
        yield Watched(MongoDocuments(db, "games"), lambda: MongoDocuments(db, "games"), mongo_away)
    finally:
        await client.drop_database(unique_name)
        await client.close()


async def test_ensure_starts_once_and_clears_what_was_cached_before(w: Watched) -> None:
    seen = Seen()
    feed = w.store.watch(seen)
    assert feed.state == "off"
    assert await feed.ensure() is True
    assert feed.state == "watching" and seen.clears == 1
    assert await feed.ensure() is True
    assert seen.clears == 1  # following already: nothing started, nothing cleared
    await feed.close()


async def test_each_writers_change_invalidates_that_document_only(w: Watched) -> None:
    await w.store.commit(change(1, 0, doc_id="quiet"))
    seen = Seen()
    feed = w.store.watch(seen)
    try:
        assert await feed.ensure()
        await w.store.commit(change(1, 0, doc_id="mine"))
        await w.other().commit(change(1, 0, doc_id="theirs"))
        await wait_for(
            lambda: {"mine", "theirs"} <= set(seen.keys), timeout_s=SEEN_S,
            what="both writers' changes reaching the feed",
        )  # fmt: skip
        assert set(seen.keys) == {"mine", "theirs"}  # "quiet" changed before: not told
    finally:
        await feed.close()


async def test_close_clears_the_cache_and_nothing_reaches_it_after(w: Watched) -> None:
    seen, later = Seen(), Seen()
    feed = w.store.watch(seen)
    assert await feed.ensure()
    await feed.close()
    assert feed.state == "off" and seen.clears >= 2  # cleared on ensure, and on close
    clears = seen.clears
    still = w.store.watch(later)
    try:
        assert await still.ensure()
        await w.other().commit(change(1, 0, doc_id="after"))
        await w.other().commit(change(1, 0, doc_id="probe"))
        await wait_for(lambda: "probe" in later.keys, timeout_s=SEEN_S, what="the probe")
    finally:
        await still.close()
    assert seen.keys == [] and seen.clears == clears  # the closed feed heard neither
    assert await feed.ensure() is True  # a closed feed can follow again
    await feed.close()


async def test_a_store_that_does_not_answer_is_not_cached_and_not_an_error(w: Watched) -> None:
    async with w.away() as away:
        seen = Seen()
        feed = away.watch(seen)
        assert await feed.ensure() is False
        assert feed.state == "off" and seen.keys == []
        await feed.close()
        assert feed.state == "off"
