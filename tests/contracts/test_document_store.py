"""The DocumentStore contract: a change and its event commit together, in a transaction or by an intent.

Every test runs on four stores: memory and MongoDB, each with transactions and on the intent
path (MongoDB forced onto it with ``transactions=False``). ``other()`` is a second writer on the
same documents and events, as another process.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace

import pytest

from tests.contracts.documents import Seen, change
from tests.waiting import wait_for
from topics.errors import StoreError
from workers.adapters.memory import MemoryDocuments
from workers.adapters.mongo import MongoDocuments, connect, database
from workers.devtools.embedded import EmbeddedStack
from workers.storage import AFTER_DOCUMENT_WRITE, AFTER_EVENT_WRITE, DocumentStore, FaultPoint
from workers.storage.ports import FaultHook, PlannedChange

KINDS = ("memory", "memory-intents", "mongo", "mongo-intents")


@dataclass
class Documents:
    """One kind of store under test, and a way to open another writer on the same data."""

    kind: str
    store: DocumentStore
    other: Callable[[FaultHook | None], DocumentStore]

    @property
    def transactions(self) -> bool:
        return not self.kind.endswith("intents")


@pytest.fixture(params=KINDS)
async def documents(
    request: pytest.FixtureRequest, stack: EmbeddedStack, unique_name: str
) -> AsyncIterator[Documents]:
    kind: str = request.param
    transactions = not kind.endswith("intents")
    if kind.startswith("memory"):
        store = MemoryDocuments("games", transactions=transactions)
        yield Documents(kind, store, lambda hook: store.handle(fault_hook=hook))
        return
    client = connect(stack.urls.mongo_url, timeout_ms=5000)
    db = database(client, unique_name)
    try:
        yield Documents(
            kind,
            MongoDocuments(db, "games", transactions=transactions),
            lambda hook: MongoDocuments(db, "games", transactions=transactions, fault_hook=hook),
        )
    finally:
        await client.drop_database(unique_name)
        await client.close()


class Crash(Exception):
    """Stands for the process dying at a fault point."""


def crash_at(point: str) -> FaultHook:
    def hook(reached: FaultPoint) -> None:
        if reached.point == point:
            raise Crash(point)

    return hook


async def versions(store: DocumentStore, doc_id: str = "g1") -> list[int]:
    return [e.version or 0 for e in await store.events.select(("games", doc_id))]


async def test_a_change_commits_with_its_event_at_the_expected_version(
    documents: Documents,
) -> None:
    store = documents.store
    await store.open()
    assert store.transactions is documents.transactions
    assert await store.commit(change(1, 10)) == "committed"
    assert await store.commit(change(2, 20)) == "committed"
    assert await store.commit(change(2, 99)) == "conflict"  # version 1 is gone: nothing written
    assert await store.commit(change(1, 99)) == "conflict"  # it exists already
    loaded = await store.load("g1")
    assert loaded.document == {"_id": "g1", "version": 2, "gold": 20} and loaded.pending is None
    assert await versions(store) == [1, 2]
    assert (await store.load("nobody")).document is None
    assert await store.interrupted() == []


async def test_of_racing_writers_of_one_version_exactly_one_commits(documents: Documents) -> None:
    await documents.store.commit(change(1, 0))
    writers = [documents.store, *(documents.other(None) for _ in range(4))]
    outcomes = await asyncio.gather(*(w.commit(change(2, n)) for n, w in enumerate(writers)))
    assert sorted(outcomes) == ["committed", "conflict", "conflict", "conflict", "conflict"]
    assert await versions(documents.store) == [1, 2]


async def test_a_crash_after_the_document_write_leaves_both_or_an_intent(
    documents: Documents,
) -> None:
    await documents.store.commit(change(1, 0))
    crashing = documents.other(crash_at(AFTER_DOCUMENT_WRITE))
    with pytest.raises(Crash):
        await crashing.commit(change(2, 5))
    loaded = await documents.store.load("g1")
    if documents.transactions:  # the transaction never committed: neither was written
        assert loaded.document is not None and loaded.document["version"] == 1
        assert loaded.pending is None and await versions(documents.store) == [1]
        return
    assert loaded.document is not None and loaded.document["version"] == 2
    assert loaded.pending is not None and loaded.pending.version == 2
    assert [doc_id for doc_id, _ in await documents.store.interrupted()] == ["g1"]
    assert await documents.store.commit(change(3, 9)) == "conflict"  # not past an intent
    assert await documents.store.complete("g1", loaded.pending) is True
    assert await documents.store.complete("g1", loaded.pending) is False  # idempotent
    assert await versions(documents.store) == [1, 2]
    assert (await documents.store.load("g1")).pending is None
    assert await documents.store.interrupted() == []


async def test_a_crash_after_the_event_write_is_completed_once(documents: Documents) -> None:
    await documents.store.commit(change(1, 0))
    crashing = documents.other(crash_at(AFTER_EVENT_WRITE))
    with pytest.raises(Crash):
        await crashing.commit(change(2, 5))
    loaded = await documents.store.load("g1")
    if documents.transactions:
        assert loaded.document is not None and loaded.document["version"] == 1
        assert await versions(documents.store) == [1]
        return
    assert loaded.pending is not None and await versions(documents.store) == [1, 2]
    assert await documents.store.complete("g1", loaded.pending) is False  # stored already
    assert (await documents.store.load("g1")).pending is None


async def test_events_are_stored_flagged_for_publishing(documents: Documents) -> None:
    await documents.store.commit(change(1, 0))
    events = documents.store.events
    pending = getattr(events, "pending_before", None)
    assert pending is not None
    assert [e.version for e in await pending(("games", "g1"), 2)] == [1]


async def test_another_event_at_the_version_means_the_stores_disagree(documents: Documents) -> None:
    await documents.store.open()
    await documents.store.events.append([change(1, 0).event])  # written past the storage
    with pytest.raises(StoreError, match="disagree"):
        await documents.store.commit(change(1, 0))


async def test_the_change_feed_sees_every_writer(documents: Documents) -> None:
    seen = Seen()
    feed = documents.store.watch(seen)
    assert await feed.ensure() and feed.state == "watching"
    await documents.other(None).commit(change(1, 0, doc_id="g7"))
    await wait_for(lambda: "g7" in seen.keys, timeout_s=30, what="the feed to see the other writer")
    await feed.close()
    assert feed.state == "off" and seen.clears >= 1


async def test_the_archive_is_a_store_of_its_own_beside_the_events(documents: Documents) -> None:
    """Where a retention moves a collection's older events: read like the events, apart."""
    store = documents.store
    await store.open()
    assert await store.commit(change(1, 10)) == "committed"
    [first] = await store.events.select(("games", "g1"))
    assert await store.archive.select(("games", "g1")) == []
    await store.archive.append([first])
    assert [e.id for e in await store.archive.select(("games", "g1"))] == [first.id]
    assert [e.id for e in await store.events.select(("games", "g1"))] == [first.id]
    other = documents.other(None)
    assert [e.id for e in await other.archive.select(("games", "g1"))] == [first.id]


def renamed(change: PlannedChange, name: str) -> PlannedChange:
    """``change`` with its version kept in ``name`` (the storage's ``version_field``)."""
    replacement = {k: v for k, v in change.replacement.items() if k != "version"}
    replacement[name] = change.replacement["version"]
    return replace(change, replacement=replacement, version_field=name)


async def test_the_version_check_reads_the_changes_version_field(documents: Documents) -> None:
    store = documents.store
    await store.open()
    assert await store.commit(renamed(change(1, 10), "rev")) == "committed"
    assert await store.commit(renamed(change(2, 20), "rev")) == "committed"
    assert await store.commit(renamed(change(2, 99), "rev")) == "conflict"
    # a change that looks for the version under another field never matches this document
    assert await store.commit(change(3, 99)) == "conflict"
    loaded = await store.load("g1")
    assert loaded.document == {"_id": "g1", "rev": 2, "gold": 20}
    writers = [store, *(documents.other(None) for _ in range(3))]
    outcomes = await asyncio.gather(*(w.commit(renamed(change(3, n), "rev")) for n, w in
                                      enumerate(writers)))  # fmt: skip
    assert sorted(outcomes) == ["committed", "conflict", "conflict", "conflict"]
    assert await versions(store) == [1, 2, 3]
