"""``eventfleet bench global``: what the global read costs the appender, what a reader pays, and
what the alternative (a store-assigned sequence) would add to every append batch.

Rows, interleaved over the rounds, alternating which side goes first:

- the appender (one process, the append row's chained events) while ``readers`` subscribers
  follow the global read live (``GET /v1/events/subscribe`` on a reader process of its own,
  from the end of the log), beside the same appender with no reader. Our choice reads
  events.stored, whose offsets Kafka assigns: the appender does no work for it, so its CPU per
  event must stay where it was; what the readers take is the machine's (2 cores shared).
- the round's events read back by pages of 1000 (``GET /v1/events``, the reader process's CPU),
  beside a raw aiokafka ``getmany`` loop decoding the same records (the bench's own CPU).
- the store's work per append batch (``insert_many``), beside the same with one
  ``find_one_and_update($inc)`` on a counter document before it: the least a store-assigned
  global sequence adds (its safe-position bookkeeping, which a reader needs to skip no
  sequence, comes on top).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Mapping

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from workers.adapters.mongo import MongoEventStore, connect, database
from workers.adapters.records import event_to_document
from workers.devtools.bench.append import appenders, chains, produce
from workers.devtools.bench.measure import Measured, Table, Target, cpu_seconds, load_average
from workers.devtools.bench.procs import Server, partitions_of, worker
from workers.devtools.bench.progress import step
from workers.roles.read.position import Positions
from workers.runtime.compose import Runtime
from workers.runtime.settings import Settings

PAGE = 1000


async def bench_global(
    settings: Settings,
    env: Mapping[str, str],
    runtime: Runtime,
    count: int,
    *,
    rounds: int = 3,
    readers: int = 4,
) -> Table:
    """The three rows (see the module), ``rounds`` rounds of ``count`` events each."""
    table = Table(
        f"global read: {count} chained events per row, {settings.partitions} partitions, "
        f"{readers} live readers beside the appender; {rounds} interleaved rounds; "
        f"{load_average()}"
    )
    stored = f"{settings.topic_prefix}events.stored"
    positions = Positions(await runtime.stores.position_key(), stored)
    beside: list[Measured] = []
    alone: list[Measured] = []
    paged: list[Measured] = []
    raw: list[Measured] = []
    # The global read's server: the commands role (its HTTP, an idle consumer).
    async with worker("reader", "commands", env) as reader:
        for r in range(rounds):
            for followed in (False, True) if r % 2 == 0 else (True, False):
                run = uuid.uuid4().hex[:6]
                start = await _ends(settings, stored)
                step(
                    f"global round {r + 1} of {rounds}: appender "
                    f"{'with' if followed else 'without'} {readers} readers"
                )
                events = chains(count, max(1, count // 20), run)
                await produce(settings.kafka_bootstrap, f"{settings.topic_prefix}events", events)
                after = positions.encode(start, len(start))
                if followed:
                    async with _following(reader.url, after, readers, count):
                        beside.append(
                            await appenders(
                                settings,
                                env,
                                1,
                                count,
                                f"appender, {readers} readers following",
                                run,
                            )
                        )
                else:
                    alone.append(await appenders(settings, env, 1, count, "appender alone", run))
                paged.append(await _pages(reader, after, count))
                raw.append(await _raw(settings, stored, start, count))
    table.add(beside, alone, Target(cpu_at_most=1.1))
    table.add(paged, raw, "reference: a reader's cost per event")
    with_counter, plain = await _sequence_cost(settings, count, rounds)
    table.add(with_counter, plain, "reference: the least a store-assigned sequence adds")
    return table


async def _ends(settings: Settings, topic: str) -> dict[int, int]:
    """The next offset of every partition of ``topic`` now (where a live reader starts)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = await partitions_of(consumer, topic)
        ends = await consumer.end_offsets(tps)
        return {tp.partition: ends[tp] for tp in tps}
    finally:
        await consumer.stop()


@contextlib.asynccontextmanager
async def _following(url: str, after: str, readers: int, count: int) -> AsyncIterator[None]:
    """``readers`` SSE subscribers of the global read from ``after``, each reading until it got
    ``count`` events; checked for that on the way out (bounded)."""
    got = [0] * readers
    tasks = [asyncio.create_task(_follow(url, after, got, i, count)) for i in range(readers)]
    try:
        yield
        async with asyncio.timeout(120):
            await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if min(got) < count:
        raise RuntimeError(f"the global readers got {got} events, not {count} each")


async def _follow(url: str, after: str, got: list[int], index: int, count: int) -> None:
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        stream = f"{url}/v1/events/subscribe?after={after}"
        async with session.get(stream, headers={"Accept": "text/event-stream"}) as answer:
            if answer.status != 200:
                raise RuntimeError(
                    f"the global read answered {answer.status}: {await answer.text()}"
                )
            async for line in answer.content:
                if line.startswith(b"data: "):
                    got[index] += 1
                    if got[index] >= count:
                        return


async def _pages(reader: Server, after: str, count: int) -> Measured:
    """The round's events read back by pages of ``PAGE`` from ``after``: the reader's CPU."""
    read, cpu_before, started = 0, cpu_seconds(reader.pid), time.perf_counter()
    async with aiohttp.ClientSession() as session:
        while read < count:
            url = f"{reader.url}/v1/events?limit={PAGE}&after={after}"
            async with session.get(url) as answer:
                page = orjson.loads(await answer.read())
            if answer.status != 200:
                raise RuntimeError(f"GET /v1/events answered {answer.status}: {page}")
            read += len(page["events"])
            after = page["next"]
            if not page["more"]:
                break
    seconds, cpu = time.perf_counter() - started, cpu_seconds(reader.pid) - cpu_before
    if read < count:
        raise RuntimeError(f"the pages held {read} events, not the round's {count}")
    return Measured(f"GET /v1/events, pages of {PAGE}", read, seconds, cpu_s=cpu)


async def _raw(settings: Settings, topic: str, start: Mapping[int, int], count: int) -> Measured:
    """The same records read by a raw ``getmany`` loop, each value parsed (its own CPU)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False, fetch_max_wait_ms=10
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in start]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, start[tp.partition])
        read, cpu_before, started = 0, time.process_time(), time.perf_counter()
        async with asyncio.timeout(120):
            while read < count:
                for records in (await consumer.getmany(timeout_ms=200, max_records=PAGE)).values():
                    for record in records:
                        orjson.loads(record.value or b"null")
                    read += len(records)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_before
    finally:
        await consumer.stop()
    return Measured("raw getmany + parse", read, seconds, cpu_s=cpu)


async def _sequence_cost(
    settings: Settings, count: int, rounds: int
) -> tuple[list[Measured], list[Measured]]:
    """insert_many per append batch, with and without a counter's ``$inc`` before it."""
    client = connect(settings.mongo_url, timeout_ms=settings.mongo_timeout_ms)
    db = database(client, settings.mongo_database)
    with_counter: list[Measured] = []
    plain: list[Measured] = []
    try:
        for r in range(rounds):
            for counted in (False, True) if r % 2 == 0 else (True, False):
                scratch = MongoEventStore(db, collection=f"seq_{uuid.uuid4().hex[:6]}")
                await scratch.ensure_indexes()
                events = chains(count, max(1, count // 20), uuid.uuid4().hex[:6])
                docs = [event_to_document(e.with_version(i + 1)) for i, e in enumerate(events)]
                started = time.perf_counter()
                for i in range(0, len(docs), settings.batch_size):
                    batch = docs[i : i + settings.batch_size]
                    if counted:
                        await db["sequence"].find_one_and_update(
                            {"_id": "global"}, {"$inc": {"next": len(batch)}}, upsert=True
                        )
                    await scratch.collection.insert_many(batch, ordered=True)
                seconds = time.perf_counter() - started
                name = "insert_many + $inc sequence" if counted else "insert_many per batch"
                (with_counter if counted else plain).append(Measured(name, count, seconds))
                await scratch.collection.drop()
    finally:
        await client.close()
    return with_counter, plain
