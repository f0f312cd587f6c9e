"""The append path next to the raw batch pipeline and the raw store, and scale-out by processes.

Events are chat messages chained the way the command side chains them (``after`` names the
previous event), so the appender takes its common path: no lookups, judged on the head.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaProducer

from topics.envelope import NEW_AGGREGATE, Event, encode, kafka_headers, new_event
from workers.adapters.mongo import MongoEventStore, connect, database
from workers.adapters.records import event_to_document
from workers.devtools.bench.measure import Measured, Table, cpu_seconds
from workers.devtools.bench.procs import Server, alive, server
from workers.devtools.bench.progress import Ticker, step
from workers.devtools.embedded import free_port
from workers.runtime.settings import Settings


def chains(count: int, aggregates: int, run: str) -> list[Event]:
    """``count`` MessageSent events over ``aggregates`` rooms, each chained after the last."""
    last: dict[str, str] = {}
    events = []
    for i in range(count):
        room = f"{run}-{i % aggregates}"
        data = {"message_id": f"m{i}", "sender_id": "ann", "content": f"hello {i}"}
        event = new_event(
            "chat_room", room, "MessageSent", data, after=last.get(room, NEW_AGGREGATE)
        )
        last[room] = event.id
        events.append(event)
    return events


async def produce(bootstrap: list[str], topic: str, events: list[Event]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, encode(e), key=e.key, headers=kafka_headers(e))
            for e in events
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def raw_store(settings: Settings, events: list[Event]) -> Measured:
    """insert_many alone, in the appender's batch size, into a collection with the same indexes."""
    client = connect(settings.mongo_url, timeout_ms=settings.mongo_timeout_ms)
    scratch = MongoEventStore(
        database(client, settings.mongo_database), collection=f"raw_{uuid.uuid4().hex[:6]}"
    )
    await scratch.ensure_indexes()
    docs = [event_to_document(e.with_version(i + 1)) for i, e in enumerate(events)]
    cpu, started = time.process_time(), time.perf_counter()
    for i in range(0, len(docs), settings.batch_size):
        await scratch.collection.insert_many(docs[i : i + settings.batch_size], ordered=True)
    measured = Measured(
        "raw insert_many (same indexes)", len(events), time.perf_counter() - started,
        cpu_s=time.process_time() - cpu,
    )  # fmt: skip
    await client.close()
    return measured


async def raw_pipeline(settings: Settings, topic: str, count: int) -> Measured:
    """getmany → insert_many → produce the batch → commit, as its own process."""
    out = f"{topic}.raw-out"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "workers.devtools.bench.baseline", "append",
        ",".join(settings.kafka_bootstrap), settings.mongo_url, settings.mongo_database, topic, out,
        str(count), str(settings.batch_size), stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    await process.stdout.readline()  # ready
    cpu_before = cpu_seconds(process.pid)
    line = await process.stdout.readline()
    cpu = cpu_seconds(process.pid) - cpu_before
    await process.wait()
    result = orjson.loads(line)
    return Measured(
        "raw getmany→insert_many→produce→commit", result["count"], result["seconds"], cpu_s=cpu
    )


async def appenders(
    settings: Settings, env: Mapping[str, str], processes: int, count: int, name: str
) -> Measured:
    """``processes`` appender workers of one group on the events topic; first stored to last.

    Progress is read from the workers' own counters (``/metrics``), not by counting the
    collection: a count on SecantusDB decodes every document (0.36 s at 20,000), and polling
    it would load the store the appender is measured against.
    """
    client = connect(settings.mongo_url, timeout_ms=settings.mongo_timeout_ms)
    events = database(client, settings.mongo_database)["events"]
    servers: list[tuple[Any, Server]] = []
    try:
        base = await events.count_documents({})
        for _ in range(processes):
            port = free_port()
            ctx = server(
                "appender", ["workers.cli", "worker", "--role", "appender"],
                url=f"http://127.0.0.1:{port}", env={**env, "EVENTFLEET_HTTP_PORT": str(port)},
                ready_path="/healthz",
            )  # fmt: skip
            servers.append((ctx, await ctx.__aenter__()))
        running = [s for _, s in servers]
        # One connection per scrape: nothing kept open to close while the workers are busy.
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            # The group's first assignment: bounded, so a group that never settles says so.
            await _published_at_least(session, running, 1, timeout_s=120, what="a first event")
            started = time.perf_counter()
            cpu_before = sum(cpu_seconds(s.pid) for s in running)
            await _published_at_least(session, running, count, ticker=Ticker("stored"))
            seconds = time.perf_counter() - started
            cpu = sum(cpu_seconds(s.pid) for s in running) - cpu_before
            step(f"{count} events published in {seconds:.1f} s")
        # Published may count a redelivered event twice: the store says when all are in.
        step("checking the store holds each event once")
        deadline = time.monotonic() + 120
        while (stored := await events.count_documents({}) - base) < count:
            alive(running)
            if time.monotonic() > deadline:
                raise RuntimeError(f"the appenders stored {stored} of {count} events in time")
            await asyncio.sleep(0.5)
        if stored != count:
            raise RuntimeError(f"the appenders stored {stored} events, not {count}")
    finally:
        step(f"stopping {len(servers)} appender process(es)")
        for ctx, _ in reversed(servers):
            await ctx.__aexit__(None, None, None)
        await client.close()
    return Measured(name, count, seconds, cpu_s=cpu)


PUBLISHED = 'eventfleet_events_published_total{mode="async"} '


async def _published_at_least(
    session: aiohttp.ClientSession,
    running: list[Server],
    count: int,
    *,
    timeout_s: float = 900,
    ticker: Ticker | None = None,
    what: str = "",
) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        alive(running)
        published = 0
        for s in running:
            try:
                async with session.get(f"{s.url}/metrics") as answer:
                    text = await answer.text()
            except aiohttp.ClientError:
                await asyncio.sleep(1)  # an appender that stopped answering: exited?
                alive(running)
                raise
            published += sum(
                int(float(line.removeprefix(PUBLISHED)))
                for line in text.splitlines()
                if line.startswith(PUBLISHED)
            )
        if ticker is not None:
            ticker.update(min(published, count), count)
        if published >= count:
            if ticker is not None:
                ticker.done(count)
            return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{len(running)} appender process(es) did not store {what or f'{count} events'} "
                f"in {timeout_s:g} s (their group may not have settled: see /healthz?verbose)"
            )
        await asyncio.sleep(0.1)


async def bench_append(
    settings: Settings, env: Mapping[str, str], count: int, *, scale: bool
) -> Table:
    run = uuid.uuid4().hex[:6]
    events = chains(count, max(1, count // 20), run)
    table = Table(f"append path: {count} chained events, batch {settings.batch_size}")
    step(f"append: raw insert_many of {count} events")
    store = await raw_store(settings, events)
    raw_topic = f"{settings.topic_prefix}bench-raw-{run}"
    step(f"append: producing {count} events for the raw pipeline")
    await produce(settings.kafka_bootstrap, raw_topic, events)
    step("append: the raw pipeline (getmany → insert_many → produce → commit)")
    raw = await raw_pipeline(settings, raw_topic, count)
    step(f"append: producing {count} events for the appender")
    await produce(settings.kafka_bootstrap, f"{settings.topic_prefix}events", events)
    step("append: eventfleet's appender")
    ours = await appenders(
        settings, env, 1, count, "eventfleet appender (judged, stored, published)"
    )
    table.add(ours, raw, "cpu/event <= 1.25x")
    table.add(ours, store, "(the store's own speed)")
    if scale:
        for processes in (2, 4):
            more = chains(count, max(1, count // 20), f"{run}s{processes}")
            step(f"scale: {processes} appender processes")
            await produce(settings.kafka_bootstrap, f"{settings.topic_prefix}events", more)
            measured = await appenders(
                settings, env, processes, count, f"{processes} appender processes"
            )
            table.add(measured, ours, "cpu/event flat")
    return table
