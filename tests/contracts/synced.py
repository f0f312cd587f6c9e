"""The fixture of the SyncAppender contract (``test_sync_appender``, ``test_sync_append_many``):
sync mode as the runtime builds it on the memory adapters, and on the real stack (MongoDB behind
a proxy that can drop it, Kafka, Redis).

The real store answers within the fleet's default timeout (``EVENTFLEET_MONGO_TIMEOUT_MS``, 5 s),
not a shorter one: a contract holds for the configuration the fleet runs, and an outage (the proxy
dropping) shows within one timeout anyway. With 2 s, one append of a full run beside ``stress-ng
--cpu 2`` went unanswered (StoreOutcomeUnknown): this runtime runs in the test's own process,
whose full garbage collections stalled it for up to 3.5 s in such a run (``tests/conftest.py``
now freezes what collection left); the store itself answered the 70 appends of two such runs
within 0.24 s."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from snapshot_rules.domain import Domains
from tests.faults import TcpProxy
from tests.kafka_topics import read_events
from tests.sync.wiring import sync_wiring
from topics.envelope import Event, decode
from workers.devtools.embedded import EmbeddedStack
from workers.examples.domains.account import ACCOUNT
from workers.ports import SyncAppender
from workers.runtime.adapters import memory_adapters
from workers.runtime.compose import Runtime
from workers.runtime.settings import Settings

__all__ = ["Synced", "s"]


@dataclass
class Synced:
    """One sync appender, what its store holds, what reached events.stored, and its outage."""

    sync: SyncAppender
    stored: Callable[[str], Awaitable[list[Event]]]
    """The stored events of account ``<id>``, in version order."""
    published: Callable[[], Awaitable[list[str]]]
    """The ids of the events on events.stored, in the order produced."""
    store_down: Callable[[], None]
    store_up: Callable[[], None]


@pytest.fixture(params=["memory", "real"])
async def s(
    request: pytest.FixtureRequest, stack: EmbeddedStack, unique_name: str
) -> AsyncIterator[Synced]:
    if request.param == "memory":
        memory = memory_adapters()
        runtime = await Runtime.start(
            Settings(topic_prefix="s.", kafka_timeout_ms=100), roles=("commands",),
            domains=Domains([ACCOUNT]), adapters=memory.adapters(),
        )  # fmt: skip
        topic = runtime.names.stored

        async def stored_memory(account: str) -> list[Event]:
            return await runtime.events.select(("account", account))

        async def published_memory() -> list[str]:
            return [decode(r.value).id for r in memory.stream.produced.records(topic)]

        events = memory.stores.events
        try:
            yield Synced(runtime.sync, stored_memory, published_memory, events.down, events.up)
        finally:
            await runtime.stop()
        return
    host, port = stack.urls.mongo_url.removeprefix("mongodb://").split("/")[0].rsplit(":", 1)
    async with TcpProxy(host, int(port)) as proxy:
        async with sync_wiring(
            kafka_url=stack.urls.kafka_url,
            mongo_url=f"mongodb://{proxy.address}/?directConnection=true",
            redis_url=stack.urls.redis_url,
            name=unique_name,  # the store's timeout is the fleet's default: see below
        ) as wired:

            async def published_kafka() -> list[str]:
                return [e.id for e in await read_events(stack.urls.kafka_url, wired.topic)]

            yield Synced(wired.sync, wired.stored, published_kafka, proxy.drop, proxy.resume)
