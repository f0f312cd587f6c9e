"""Sync mode when a dependency fails: every failure raises, and nothing half-done is lost."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pymongo
import pytest

from tests.faults import TcpProxy
from tests.kafka_topics import create_topic
from tests.waiting import wait_for
from topics.envelope import Metadata
from topics.errors import StoreUnavailable, StreamUnavailable
from workers.devtools.embedded import EmbeddedStack
from workers.examples.domains.account import ACCOUNT
from workers.ports import AppendItem

from .wiring import PARTITIONS, sync_wiring


async def _eventually(check: Callable[[], Awaitable[bool]], *, timeout_s: float = 15.0) -> None:
    await wait_for(check, timeout_s=timeout_s, interval_s=0.05)


async def test_kafka_down_after_storing_is_reported_and_repaired_once(
    stack: EmbeddedStack, unique_name: str
) -> None:
    # A Kafka of this test's own, so it can crash; MongoDB is the shared one.
    async with EmbeddedStack(mongo_url=stack.urls.mongo_url, redis_url=stack.urls.redis_url) as own:
        kafka = own.process("kafka")
        async with sync_wiring(
            kafka_url=own.urls.kafka_url,
            mongo_url=stack.urls.mongo_url,
            redis_url=stack.urls.redis_url,
            name=unique_name,
            kafka_timeout_ms=1000,
        ) as wired:
            opened = await wired.append("k1", "AccountOpened", owner="ann")
            assert opened.published

            kafka.kill()  # Kafka crashes: nothing it held survives (Tansu keeps data in memory)
            loop = asyncio.get_running_loop()
            started = loop.time()
            deposit = await wired.append("k1", "MoneyDeposited", amount=5)
            assert loop.time() - started < 3.0  # the publish budget is 1 s: the answer is not held
            assert not deposit.published and deposit.event.version == 2
            assert await wired.stored("k1") == [opened.event, deposit.event]
            assert await wired.pending() == [deposit.event.id]
            await wired.sync.drain()  # the attempt that outlived the answer fails too
            with pytest.raises(StreamUnavailable):
                await wired.outbox.relay_once(older_than_s=0)
            assert await wired.pending() == [deposit.event.id]

            # The state is the store's, not Kafka's: validation goes on while Kafka is down.
            more = await wired.append("k1", "MoneyWithdrawn", amount=5)
            assert not more.published and more.event.version == 3
            await wired.sync.drain()

            await kafka.start()  # back, empty: the topic is created again, as `topics ensure` would
            await create_topic(own.urls.kafka_url, wired.topic, partitions=PARTITIONS)
            await _eventually(wired.relayed)
            on_stream = await wired.published()
            assert [(e.id, e.version) for e in on_stream] == [
                (deposit.event.id, 2),
                (more.event.id, 3),
            ]
            assert await wired.outbox.relay_once(older_than_s=0) == 0


async def test_store_down_raises_and_produces_nothing(
    stack: EmbeddedStack, unique_name: str
) -> None:
    host_port = stack.urls.mongo_url.removeprefix("mongodb://").split("/")[0]
    host, port = host_port.rsplit(":", 1)
    async with TcpProxy(host, int(port)) as proxy:
        async with sync_wiring(
            kafka_url=stack.urls.kafka_url,
            mongo_url=f"mongodb://{proxy.address}/?directConnection=true",
            redis_url=stack.urls.redis_url,
            name=unique_name,
        ) as wired:
            opened = await wired.append("m1", "AccountOpened", owner="ann")
            proxy.drop()
            try:
                # Only the write the store cannot answer has a short deadline (PyMongo's
                # timeout block): the wiring's own start keeps the default, so a slow machine
                # does not fail the setup this test is not about.
                with pytest.raises(StoreUnavailable) as caught, pymongo.timeout(0.5):
                    await wired.sync.append(
                        ACCOUNT, "m1", "MoneyDeposited", {"amount": 5}, Metadata()
                    )
                assert caught.value.retriable and "MongoDB" in str(caught.value)
            finally:
                proxy.resume()
            assert await wired.stored("m1") == [opened.event]
            assert [e.id for e in await wired.published()] == [opened.event.id]
            again = await wired.append("m1", "MoneyDeposited", amount=5)
            assert again.published and again.event.version == 2


async def test_kafka_down_after_a_multi_append_is_repaired_each_in_its_order(
    stack: EmbeddedStack, unique_name: str
) -> None:
    """The transaction commits, Kafka does not acknowledge the one produce: 201 published=false,
    every event stays flagged, and the relay publishes them, each aggregate's in version order."""
    async with EmbeddedStack(mongo_url=stack.urls.mongo_url, redis_url=stack.urls.redis_url) as own:
        kafka = own.process("kafka")
        async with sync_wiring(
            kafka_url=own.urls.kafka_url,
            mongo_url=stack.urls.mongo_url,
            redis_url=stack.urls.redis_url,
            name=unique_name,
            kafka_timeout_ms=1000,
        ) as wired:
            for account in ("j1", "j2"):
                assert (await wired.append(account, "AccountOpened", owner="jo")).published
            kafka.kill()
            both = [
                AppendItem(ACCOUNT, account, "MoneyDeposited", {"amount": amount})
                for account, amount in (("j1", 5), ("j2", 7))
            ]
            first = await wired.sync.append_many(both, Metadata())
            second = await wired.sync.append_many(both[::-1], Metadata())
            assert not first.published and not second.published
            stored = [*first.events, *second.events]
            assert sorted(await wired.pending()) == sorted(e.id for e in stored)
            await wired.sync.drain()

            await kafka.start()
            await create_topic(own.urls.kafka_url, wired.topic, partitions=PARTITIONS)
            await _eventually(wired.relayed)
            on_stream = await wired.published()
            for account in ("j1", "j2"):
                mine = [(e.id, e.version) for e in on_stream if e.aggregate_id == account]
                assert mine == [(e.id, e.version) for e in stored if e.aggregate_id == account]
                assert [version for _, version in mine] == [2, 3]
