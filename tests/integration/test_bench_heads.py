"""The judged append baseline reads the heads of aggregates it has not seen, as the appender
does: the same store work on both sides of the row, or the baseline's cost would flatter us."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from pymongo import AsyncMongoClient

from topics.envelope import encode
from workers.devtools.bench.append import chains
from workers.devtools.bench.baseline import judge, look_up_heads
from workers.devtools.embedded import EmbeddedStack

pytestmark = pytest.mark.asyncio


async def test_unseen_heads_are_read_once_and_an_existing_history_is_continued_not_restarted(
    stack: EmbeddedStack, unique_name: str
) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.urls.mongo_url)
    try:
        collection = client[unique_name]["events"]
        first, second, third = [orjson.loads(encode(e)) for e in chains(3, 1, unique_name)]
        first["version"] = 1
        await collection.insert_one({**first, "_id": first["id"]})  # stored by an earlier run
        heads: dict[str, tuple[str, str, int]] = {}
        seen: set[str] = set()
        key = f"chat_room:{unique_name}-0"
        await look_up_heads(collection, [second], heads, seen)
        assert heads == {key: (first["id"], "MessageSent", 1)} and seen == {key}
        assert judge([second], heads) == [True] and second["version"] == 2
        await collection.delete_many({})  # a head already known is not read again
        await look_up_heads(collection, [third], heads, seen)
        assert judge([third], heads) == [True] and third["version"] == 3
        fresh: dict[str, tuple[str, str, int]] = {}
        await look_up_heads(collection, [first], fresh, set())  # nothing stored: no head
        assert fresh == {}
        assert judge([dict(second)], fresh) == [False]  # chained after an unknown event
    finally:
        await client.close()
