"""``eventfleet bench``: our command and append paths next to their physical limits, in one run.

Every figure is reported with its baseline measured in the same process on the same
stack, and the ratio between them: absolute rates on a shared 2-core machine and on
SecantusDB (a test surrogate for mongod) mean little alone.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from topics.envelope import encode, kafka_headers, new_event
from workers.adapters.kafka import ensure_topics, fleet_catalog
from workers.adapters.mongo import MongoEventStore, connect, database, event_to_document
from workers.devtools.dev import dev_settings, embedded_stack
from workers.devtools.embedded import free_port
from workers.roles.requests import CommandRequest
from workers.runtime.compose import Runtime
from workers.runtime.faust_app import FleetApp
from workers.runtime.serve import build_fleet
from workers.runtime.settings import Settings

ITEMS = [{"sku": "tea", "qty": 2, "price": 3.5}]


@dataclass(frozen=True, slots=True)
class Measured:
    """One measurement: a rate and, for request paths, latency percentiles in ms."""

    name: str
    count: int
    seconds: float
    p50_ms: float | None = None
    p99_ms: float | None = None

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    def line(self, baseline: Measured | None = None) -> str:
        latency = (
            f"  p50 {self.p50_ms:6.2f} ms  p99 {self.p99_ms:6.2f} ms"
            if self.p50_ms is not None
            else ""
        )
        ratio = f"  = {self.rate / baseline.rate:.2f} x {baseline.name}" if baseline else ""
        return f"  {self.name:<44} {self.rate:>9,.0f}/s{latency}{ratio}"


async def concurrently(
    name: str, count: int, clients: int, call: Callable[[int], Awaitable[Any]]
) -> Measured:
    """Run ``call(i)`` for i < count from ``clients`` concurrent loops; time each call."""
    latencies: list[float] = []
    next_index = iter(range(count))

    async def client() -> None:
        for i in next_index:
            started = time.perf_counter()
            await call(i)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100)
    return Measured(name, count, elapsed, cuts[49] * 1000, cuts[98] * 1000)


async def bench(settings: Settings, *, path: str, events: int) -> int:
    settings = dev_settings(settings, port=free_port()).with_defaults(
        topic_prefix=f"bench-{uuid.uuid4().hex[:6]}.",
        mongo_database=f"bench_{uuid.uuid4().hex[:6]}",
    )
    stack = embedded_stack(settings)
    try:
        urls = await stack.start()
        settings = settings.with_defaults(
            kafka_url=urls.kafka_url,
            mongo_url=urls.mongo_url,
            redis_url=urls.redis_url,
            kafka_idempotence="kafka" not in stack.started and settings.kafka_idempotence,
        )
        runtime = await Runtime.start(settings)
        try:
            await ensure_topics(settings, fleet_catalog(settings, runtime.domains))
            if path == "commands":
                await bench_commands(runtime, events)
            else:
                await bench_append(runtime, events)
        finally:
            await runtime.stop()
    finally:
        await stack.stop()
    return 0


async def bench_commands(runtime: Runtime, count: int) -> None:
    settings = runtime.settings
    run = uuid.uuid4().hex[:6]
    print(f"command path: {count} requests per row, OrderPaid on placed orders (marks exist)")
    redis = Redis.from_url(settings.redis_url)
    raw_producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=0
    )
    await raw_producer.start()
    cas = redis.register_script(
        "local v = redis.call('GET', KEYS[1]); redis.call('SET', KEYS[1], ARGV[1], 'PX', 60000); return v"
    )
    try:
        for clients in (1, 64):
            n = count if clients > 1 else max(200, count // 10)
            await _command_row(runtime, clients, n, f"b{run}-{clients}", cas, raw_producer)
        await bench_http(runtime, count, run)
    finally:
        await raw_producer.stop()
        await redis.aclose()


async def bench_http(runtime: Runtime, count: int, run: str) -> None:
    """The same requests through HTTP: the commands role here, the clients in another process."""
    fleet = build_fleet(runtime, ["commands"], app_id=f"{runtime.settings.group_id}-bench-http-{run}")
    await fleet.app.start()
    url = f"http://{runtime.settings.http_host}:{runtime.settings.http_port}"
    try:
        for clients in (1, 64):
            n = count if clients > 1 else max(200, count // 10)
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "workers.devtools.bench_client", url, str(clients), str(n), f"h{run}-{clients}",
                stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, _ = await process.communicate()
            result = orjson.loads(out)
            if set(result["statuses"]) != {"202"}:
                raise RuntimeError(f"unexpected answers over HTTP: {result['statuses']}")
            row = Measured(
                f"eventfleet over HTTP, {clients} clients",
                n,
                result["seconds"],
                result["p50_ms"],
                result["p99_ms"],
            )
            print(row.line())
    finally:
        fleet.draining = True
        await fleet.app.stop()


async def _command_row(
    runtime: Runtime, clients: int, n: int, run: str, cas: Any, raw_producer: Any
) -> None:
    """One row pair: the raw work at ``clients`` concurrency, then ours on the same orders."""
    service, topic = runtime.commands, f"{runtime.settings.topic_prefix}bench.raw"
    orders = [f"{run}-{i}" for i in range(n)]
    await concurrently(
        "setup",
        n,
        64,
        lambda i: service.handle(_request(orders[i], "OrderPlaced", {"items": ITEMS})),
    )
    payload = encode(new_event("order", "x", "OrderPaid", {"amount": 7}))

    async def raw(i: int) -> None:
        await cas(keys=[f"bench-raw:{run}:{i}"], args=["OrderPaid|x"])
        await raw_producer.send_and_wait(topic, payload, key=orders[i].encode())

    async def ours(i: int) -> None:
        answer = await service.handle(_request(orders[i], "OrderPaid", {"amount": 7}))
        if answer.status != 202:
            raise RuntimeError(f"unexpected answer {answer}")

    baseline = await concurrently(f"raw CAS + acks=all produce, {clients} clients", n, clients, raw)
    measured = await concurrently(f"eventfleet commands, {clients} clients", n, clients, ours)
    print(baseline.line())
    print(measured.line(baseline))


def _request(order: str, event_type: str, data: dict[str, Any]) -> CommandRequest:
    return CommandRequest("order", order, event_type, data)


async def bench_append(runtime: Runtime, count: int) -> None:
    settings = runtime.settings
    print(
        f"append path: {count} requested events on {settings.partitions} partitions, batch {settings.batch_size}"
    )
    events = [
        new_event(
            "order",
            f"a-{i % 500}",
            "OrderPlaced" if i < 500 else "OrderPaid",
            {"items": ITEMS} if i < 500 else {"amount": i},
        )
        for i in range(count)
    ]

    # (a) the store alone: insert_many of the same documents into a collection with the
    # event store's own indexes and write concern, in batches of the appender's size.
    client = connect(settings.mongo_url, timeout_ms=settings.mongo_timeout_ms)
    scratch = MongoEventStore(database(client, settings.mongo_database), collection="bench_raw")
    await scratch.ensure_indexes()
    docs = [event_to_document(e.with_version(i + 1)) for i, e in enumerate(events)]
    started = time.perf_counter()
    for i in range(0, len(docs), settings.batch_size):
        await scratch.collection.insert_many(docs[i : i + settings.batch_size], ordered=True)
    raw_store = Measured(
        "raw insert_many (same store, same indexes)", count, time.perf_counter() - started
    )
    await client.close()

    topic = runtime.names.events
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5)
    await producer.start()
    await asyncio.gather(
        *[
            await producer.send(topic, encode(e), key=e.key, headers=kafka_headers(e))
            for e in events
        ]
    )
    await producer.stop()

    # (b) a Faust agent that does nothing but ack, reading the same topic.
    noop = await _noop_agent_rate(settings, topic, count)
    # ours: the appender role, from the first event stored to the last.
    fleet = build_fleet(runtime, ["appender"], app_id=f"{settings.group_id}-bench-{uuid.uuid4().hex[:6]}")
    appended = runtime.metrics.events_appended.labels("order")
    await fleet.app.start()
    first_at = await _wait(lambda: appended._value.get() > 0, timeout_s=60)
    await _wait(lambda: appended._value.get() >= count, timeout_s=600)
    ours = Measured(
        "eventfleet appender (stored + published)", count, time.perf_counter() - first_at
    )
    fleet.draining = True
    await fleet.app.stop()
    lower = min(raw_store, noop, key=lambda m: m.rate)
    print(raw_store.line())
    print(noop.line())
    print(ours.line(lower))


async def _noop_agent_rate(settings: Settings, topic: str, count: int) -> Measured:
    app = FleetApp(
        f"bench-noop-{uuid.uuid4().hex[:6]}", broker=[f"kafka://{h}" for h in settings.kafka_bootstrap],
        store="memory://", web_enabled=False, topic_disable_leader=True, topic_allow_declare=False,
        consumer_auto_offset_reset="earliest", broker_session_timeout=3, broker_heartbeat_interval=0.5,
    )  # fmt: skip
    app.fetch_max_wait_ms = settings.kafka_fetch_max_wait_ms
    seen = 0
    first_at = 0.0
    done = asyncio.Event()

    @app.agent(app.topic(topic, value_serializer="raw", key_serializer="raw"))
    async def noop(stream: Any) -> None:
        nonlocal seen, first_at
        async for batch in stream.noack_take(
            settings.batch_size, within=settings.batch_within_ms / 1000
        ):
            first_at = first_at or time.perf_counter()
            for event in batch:
                await stream.ack(event)
            seen += len(batch)
            if seen >= count:
                done.set()

    await app.start()
    await asyncio.wait_for(done.wait(), 600)
    measured = Measured("no-op Faust agent (same topic)", count, time.perf_counter() - first_at)
    await app.stop()
    return measured


async def _wait(condition: Callable[[], bool], *, timeout_s: float) -> float:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the benchmark did not finish in time")
        await asyncio.sleep(0.002)
    return time.perf_counter()
