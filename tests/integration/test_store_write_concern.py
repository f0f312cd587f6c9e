"""An append the store applied less durably than asked is never answered as stored: beside a
write concern error, a duplicate it met is not read as a conflict at that event."""

from __future__ import annotations

import pytest
from pymongo import WriteConcern

from topics.envelope import new_event
from topics.errors import StoreError
from workers.adapters.mongo import MongoEventStore, connect, database
from workers.devtools.embedded import EmbeddedStack
from workers.ports import AppendConflict


async def test_an_append_beside_a_write_concern_it_cannot_meet_is_the_stores_error(
    stack: EmbeddedStack, unique_name: str
) -> None:
    """More data-bearing members than SecantusDB has (``w=5``): the server applies the events
    up to the duplicate and reports a write concern error beside the duplicate. A conflict at
    the duplicate (``inserted=1``) would tell the appender that the first event is stored; it
    was answered so before the fix. The store's error leaves every event of the batch to be
    tried again, and a try again finds its own events (the ids) already there."""
    client = connect(stack.urls.mongo_url, timeout_ms=5000)
    try:
        store = MongoEventStore(database(client, unique_name))
        await store.ensure_indexes()
        opened = new_event("order", "o1", "OrderPlaced", {}, version=1)
        await store.append([opened])
        store.collection = store.collection.with_options(
            write_concern=WriteConcern(w=5, wtimeout=200)
        )
        paid = new_event("order", "o2", "OrderPaid", {}, version=1)
        with pytest.raises(StoreError, match="MongoDB refused appending 2 events") as caught:
            await store.append([paid, opened])
        assert not isinstance(caught.value, AppendConflict)
        with pytest.raises(StoreError, match="MongoDB refused appending 1 events"):
            await store.append([new_event("order", "o3", "OrderPlaced", {}, version=1)])
    finally:
        await client.drop_database(unique_name)
        await client.close()
