"""What sharding the events collection by {aggregate_type, aggregate_id} needs from the store.

Verified here against a MongoDB-protocol server (SecantusDB, which does not shard): the
unique indexes the store creates start with the shard key (MongoDB refuses a unique index
that does not, on a sharded collection), and every query the event store sends names the
shard key, so mongos can route it to one shard instead of broadcasting it. Not verified
here: a real sharded cluster (mongos, chunk migration); deploy/mongo/shard-events.js is the
script to shard one.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring

from topics.envelope import new_event
from workers.adapters.mongo import MongoEventStore, database
from workers.devtools.embedded import EmbeddedStack

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "mongo" / "shard-events.js"


def script_shard_key() -> list[str]:
    match = re.search(r"shardCollection\(`\$\{dbName\}\.events`, \{([^}]*)\}", SCRIPT.read_text())
    assert match, "deploy/mongo/shard-events.js does not shard the events collection"
    return [part.split(":")[0].strip() for part in match.group(1).split(",")]


class Finds(monitoring.CommandListener):
    """Records the filter of every find sent to the events collection."""

    def __init__(self) -> None:
        self.filters: list[dict[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find" and event.command.get("find") == "events":
            self.filters.append(dict(event.command.get("filter", {})))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
async def watched(
    stack: EmbeddedStack, unique_name: str
) -> AsyncIterator[tuple[MongoEventStore, Finds]]:
    finds = Finds()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        stack.urls.mongo_url, event_listeners=[finds], tz_aware=True
    )
    store = MongoEventStore(database(client, unique_name))
    await store.ensure_indexes()
    yield store, finds
    await client.close()


def names_the_shard_key(query: dict[str, Any], key: list[str]) -> bool:
    if all(field in query for field in key):
        return True
    branches = query.get("$or")
    return bool(branches) and all(all(f in b for f in key) for b in branches)


async def test_unique_indexes_start_with_the_scripted_shard_key(
    watched: tuple[MongoEventStore, Finds],
) -> None:
    store, _ = watched
    key = script_shard_key()
    assert key == ["aggregate_type", "aggregate_id"]
    indexes = [index async for index in await store.collection.list_indexes()]
    for index in indexes:
        fields = list(index["key"])
        if index.get("unique") and fields != ["_id"]:
            assert fields[: len(key)] == key, index


async def test_every_event_store_query_names_the_shard_key(
    watched: tuple[MongoEventStore, Finds],
) -> None:
    store, finds = watched
    events = [new_event("order", f"o{i}", "OrderPlaced", {}).with_version(1) for i in range(3)]
    await store.append(events)
    await store.select(("order", "o1"))
    await store.heads([("order", "o1"), ("order", "o2")])
    await store.select(("order", "o2"), desc=True, limit=1)
    found = await store.find(
        [e.id for e in events], aggregates=[(e.aggregate_type, e.aggregate_id) for e in events]
    )
    assert set(found) == {e.id for e in events}
    single = await store.find([events[0].id], aggregates=[("order", "o0")])
    assert list(single) == [events[0].id]
    key = script_shard_key()
    assert len(finds.filters) >= 6
    assert [f for f in finds.filters if not names_the_shard_key(f, key)] == []
    # Without the aggregates an id lookup cannot be routed: it is the caller's choice.
    finds.filters.clear()
    await store.find([events[0].id])
    assert not names_the_shard_key(finds.filters[0], key)
