"""The append path next to the raw batch pipeline and the raw store, and scale-out by processes.

Events are chat messages chained the way the command side chains them (``after`` names the
previous event), so the appender takes its common path: no lookups, judged on the head.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError

from topics.catalog import TopicSpec
from topics.envelope import NEW_AGGREGATE, Event, encode, kafka_headers, new_event
from workers.adapters.kafka import ensure_topics
from workers.adapters.mongo import Document, MongoEventStore, connect, database
from workers.adapters.records import event_to_document
from workers.devtools.bench.balance import Shared, shared
from workers.devtools.bench.measure import (
    Measured,
    Table,
    Target,
    cpu_seconds,
    load_average,
)
from workers.devtools.bench.owned import owned
from workers.devtools.bench.procs import Server, alive, all_ready, partitions_of, worker
from workers.devtools.bench.progress import Ticker, step
from workers.runtime.connections import kafka_config
from workers.runtime.settings import Settings
from workers.secrets import read_secrets


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


async def produce(bootstrap: list[str], topic: str, events: Sequence[Event]) -> None:
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
    started = time.perf_counter()
    for i in range(0, len(docs), settings.batch_size):
        await scratch.collection.insert_many(docs[i : i + settings.batch_size], ordered=True)
    # No CPU: the work is the store's, and this process only waits for it.
    measured = Measured(
        "raw insert_many (same indexes)", len(events), time.perf_counter() - started
    )
    await client.close()
    return measured


async def raw_pipeline(
    settings: Settings, topic: str, count: int, run: str, *, judged: bool
) -> Measured:
    """getmany → [decode → unseen heads → judge →] insert_many → produce the batch → commit, as its
    own process.

    Its rate comes from the timestamps of what it published, as ours does.
    """
    out = f"{topic}.out"
    async with owned(
        sys.executable,
        "-m",
        "workers.devtools.bench.baseline",
        "judged" if judged else "append",
        ",".join(settings.kafka_bootstrap),
        settings.mongo_url,
        settings.mongo_database,
        topic,
        out,
        str(count),
        str(settings.batch_size),
        stdout=asyncio.subprocess.PIPE,
    ) as process:
        assert process.stdout is not None
        await process.stdout.readline()  # ready
        cpu_before = cpu_seconds(process.pid)
        line = await process.stdout.readline()
        cpu = cpu_seconds(process.pid) - cpu_before
        await process.wait()
    result = orjson.loads(line)
    if result["refused"]:
        raise RuntimeError(f"the judged baseline refused {result['refused']} valid events")
    seconds = await published_span(settings.kafka_bootstrap, out, run, result["count"])
    name = (
        "judged: getmany→decode→heads→judge→insert_many→produce→commit"
        if judged
        else "bare: getmany→insert_many→produce→commit"
    )
    return Measured(name, result["count"], seconds, cpu_s=cpu)


async def published_span(bootstrap: list[str], topic: str, run: str, count: int) -> float:
    """Seconds between the first and the last of ``count`` records of ``run`` on ``topic``,
    scaled to ``count`` records (the first one's own work is before its timestamp).

    Read after the measurement from the records' timestamps, so watching costs the measured
    process nothing and the rate does not depend on how often progress was read.
    """
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=10,
    )
    marker = run.encode()
    stamps: list[int] = []
    await consumer.start()
    try:
        deadline = time.monotonic() + 120
        while len(stamps) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"read {len(stamps)} of {count} published records of {topic}")
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            stamps += [
                r.timestamp for rs in batches.values() for r in rs if marker in (r.key or b"")
            ]
    finally:
        await consumer.stop()
    span_s = (max(stamps) - min(stamps)) / 1000
    return span_s * count / (count - 1) if count > 1 and span_s > 0 else max(span_s, 1e-3)


async def appenders(
    settings: Settings,
    env: Mapping[str, str],
    processes: int,
    count: int,
    name: str,
    run: str,
    *,
    settled_first: Sequence[Event] = (),
) -> Measured:
    """``processes`` appender workers of one group on the events topic.

    Progress is read from ``events.stored`` by the bench itself (the records of this run, as
    they arrive), not from the workers' ``/metrics``: a scrape costs the measured process a
    share of its CPU (rendering every series), which the baselines never pay. The rate comes
    from the timestamps of what they published, read afterwards; CPU is counted from the first
    event seen published, per event published after it.

    ``settled_first``: the run's events, produced once every process holds partitions (the
    scale-out rows, which measure the group at work, not its forming): with the events there
    before, the first process to start took them all, and a rebalance in the middle of the
    measurement moved them when the next one joined (1.67x the CPU of one, where settled
    groups measured 1.15x). There the last process joins the others once they hold their
    partitions, and the time until the group shares them again is noted on the row (``Shared``).
    """
    client = connect(settings.mongo_url, timeout_ms=settings.mongo_timeout_ms)
    events = database(client, settings.mongo_database)["events"]
    servers = contextlib.AsyncExitStack()  # a failure reaches each server: it shows its log
    running: list[Server] = []
    stored_topic = f"{settings.topic_prefix}events.stored"
    try:
        await servers.__aenter__()
        base = await _stored_since(events, 0, time.monotonic() + 120)
        if base < 0:
            raise RuntimeError("the store did not count its events within 120 s")
        published = await servers.enter_async_context(
            Published.watching(settings.kafka_bootstrap, stored_topic, run)
        )
        joined: Shared | None = None
        for n in range(processes):
            if settled_first and processes > 1 and n == processes - 1:
                await all_ready(running, "/readyz")  # the group the last one joins holds its share
            running.append(await servers.enter_async_context(worker("appender", "appender", env)))
        if settled_first:
            if processes > 1:  # the last one joined once its HTTP was up: shared again when?
                topic = f"{settings.topic_prefix}events"
                joined = await shared(
                    running,
                    role="appender",
                    topic=topic,
                    partitions=settings.partitions,
                    since=time.monotonic(),
                )
                step(f"{joined} ({processes} processes, {settings.partitions} partitions)")
            await all_ready(running, "/readyz")
            await produce(settings.kafka_bootstrap, f"{settings.topic_prefix}events", settled_first)
        # The group's first assignment: bounded, so a group that never settles says so.
        first = await published.at_least(1, running, timeout_s=120, what="a first event")
        cpu_before = sum(cpu_seconds(s.pid) for s in running)
        done = await published.at_least(count, running, ticker=Ticker("stored"))
        cpu = sum(cpu_seconds(s.pid) for s in running) - cpu_before
        step(f"{count} events published")
        # Published may count a redelivered event twice: the store says when all are in.
        step("checking the store holds each event once")
        deadline = time.monotonic() + 120
        while (stored := await _stored_since(events, base, deadline)) < count:
            alive(running)
            if time.monotonic() > deadline:
                raise RuntimeError(f"the appenders stored {stored} of {count} events in time")
            await asyncio.sleep(1)
        if stored != count:
            raise RuntimeError(f"the appenders stored {stored} events, not {count}")
    finally:
        step(f"stopping {len(running)} appender process(es)")
        await servers.__aexit__(*sys.exc_info())
        await client.close()
    seconds = await published_span(settings.kafka_bootstrap, stored_topic, run, count)
    cpu_per_event = cpu / max(1, done - first)
    note = str(joined) if joined is not None else ""
    return Measured(name, count, seconds, cpu_s=cpu_per_event * count, note=note)


async def _stored_since(events: AsyncCollection[Document], base: int, deadline: float) -> int:
    """Documents stored beyond ``base``, from the collection's own count (no query: SecantusDB
    decoded every document for ``count_documents``, which outlasted the client's timeout for
    minutes on a loaded machine); a count that times out is asked again until ``deadline``
    (then -1: not known). The unique ``_id`` keeps one document per event id."""
    while True:
        try:
            return int(await events.estimated_document_count()) - base
        except PyMongoError:
            if time.monotonic() > deadline:
                return -1
            await asyncio.sleep(1)


class Published:
    """The records of one run published on ``events.stored`` so far, counted by reading the
    topic from where it ended when the watch began (``watching``)."""

    def __init__(self, consumer: AIOKafkaConsumer, run: str) -> None:
        self._consumer = consumer
        self._marker = run.encode()
        self.count = 0

    @classmethod
    @contextlib.asynccontextmanager
    async def watching(cls, bootstrap: list[str], topic: str, run: str) -> AsyncIterator[Published]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=100,
        )
        await consumer.start()
        try:
            tps = await partitions_of(consumer, topic)
            if not tps:
                raise RuntimeError(f"{topic} has no partitions to watch")
            consumer.assign(tps)
            await consumer.seek_to_end(*tps)
            for tp in tps:  # resolved now, before any appender starts: none of its records missed
                await consumer.position(tp)
            yield cls(consumer, run)
        finally:
            await consumer.stop()

    async def at_least(
        self,
        count: int,
        running: list[Server],
        *,
        timeout_s: float = 900,
        ticker: Ticker | None = None,
        what: str = "",
    ) -> int:
        """Read on until ``count`` records of the run were published; how many were."""
        deadline = time.monotonic() + timeout_s
        while self.count < count:
            alive(running)
            if time.monotonic() > deadline:
                stored = what or f"{count} events"
                raise RuntimeError(
                    f"{len(running)} appender process(es) did not store {stored} "
                    f"in {timeout_s:g} s (their group may not have settled: see /healthz?verbose)"
                )
            batches = await self._consumer.getmany(timeout_ms=500, max_records=5000)
            self.count += sum(
                1 for rs in batches.values() for r in rs if self._marker in (r.key or b"")
            )
            if ticker is not None:
                ticker.update(min(self.count, count), count)
        if ticker is not None:
            ticker.done(count)
        return self.count


async def bench_append(
    settings: Settings, env: Mapping[str, str], count: int, *, rounds: int = 3
) -> Table:
    """Ours beside the judged and the bare pipeline, interleaved, alternating order per round."""
    table = Table(
        f"append path: {count} chained events, batch {settings.batch_size}, "
        f"{settings.partitions} partitions, w=majority j=true on both sides; "
        f"{rounds} interleaved rounds; {load_average()}"
    )
    events_topic = f"{settings.topic_prefix}events"
    sides: dict[str, list[Measured]] = {"ours": [], "judged": [], "bare": []}
    store: list[Measured] = []
    for r in range(rounds):
        order = ("bare", "judged", "ours") if r % 2 == 0 else ("ours", "judged", "bare")
        for side in order:
            run = uuid.uuid4().hex[:6]
            events = chains(count, max(1, count // 20), run)
            step(f"append round {r + 1} of {rounds}: {side} (producing {count} events first)")
            if side == "ours":
                await produce(settings.kafka_bootstrap, events_topic, events)
                measured = await appenders(
                    settings, env, 1, count, "eventfleet appender (judged, stored, published)", run
                )
            else:
                topic = f"{settings.topic_prefix}bench-raw-{run}"
                await _create(settings, [topic, f"{topic}.out"])
                await produce(settings.kafka_bootstrap, topic, events)
                measured = await raw_pipeline(settings, topic, count, run, judged=side == "judged")
            sides[side].append(measured)
        store.append(await raw_store(settings, chains(count, max(1, count // 20), "s" + run)))
    table.add(sides["ours"], sides["judged"], Target(cpu_at_most=1.2))
    table.add(sides["ours"], sides["bare"], Target(rate_at_least=0.8, cpu_at_most=1.3))
    table.add(sides["ours"], store, "(the store's own speed)")
    return table


async def bench_scale(
    settings: Settings,
    fresh: Callable[[str], Awaitable[tuple[Settings, Mapping[str, str]]]],
    count: int,
) -> tuple[Table, list[Point]]:
    """1, 2 and 4 appender processes of one group, each measured at work once settled.

    Each row's processes form a group of their own on topics of their own (``fresh(part)``
    creates them and returns their settings and the workers' environment): on the embedded
    broker (Tansu 0.6), a group whose leader left while it was re-forming keeps that departed
    leader, and its next members wait for an assignment nobody sends. Two appenders stopped
    together leave it so.
    """
    table = Table(
        f"append scale-out: {count} chained events, {settings.partitions} partitions, "
        f"each group measured once settled; the last process joins the others once "
        f"they hold their share: join → shared, each member's partitions (the joiner "
        f"last); {load_average()}"
    )
    measured: dict[int, Measured] = {}
    for processes in (1, 2, 4):
        run = uuid.uuid4().hex[:6]
        row, env = await fresh(f"x{processes}")
        step(f"scale: {processes} appender process(es)")
        measured[processes] = await appenders(
            row,
            env,
            processes,
            count,
            f"{processes} appender process(es)",
            run,
            settled_first=chains(count, max(1, count // 20), run),
        )
    for processes in (2, 4):
        table.add(measured[processes], measured[1], scale_target(processes))
    points = [Point(n, m.rate, m.cpu_per_item_ms or 0.0) for n, m in measured.items()]
    return table, points


def scale_target(processes: int) -> Target | str:
    """Two processes must cost at most 1.15x one per event; more are shown, not judged (the
    fixed cost each adds is the same, spread over fewer events each)."""
    return Target(cpu_at_most=1.15) if processes == 2 else "reference: no target"


@dataclass(frozen=True, slots=True)
class Point:
    """One scale-out measurement: processes, events/s, CPU ms per event."""

    processes: int
    rate: float
    cpu_ms: float


async def _create(settings: Settings, topics: list[str]) -> None:
    """Topics with as many partitions as the fleet's: the baseline's produce is the same work."""
    specs = [TopicSpec(t, settings.partitions, settings.replication) for t in topics]
    await ensure_topics(kafka_config(settings, read_secrets(settings)), specs)
