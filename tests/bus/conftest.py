"""Buses under test, each on its real server with names no other test uses, and a recording handler."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import nats
import nats.errors
import orjson
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.waiting import wait_for
from topics.envelope import Event, new_event
from workers.adapters.kafka import KafkaBusOptions, KafkaEventBus, plain
from workers.adapters.nats import NatsEventBus
from workers.adapters.redis import RedisEventBus
from workers.bus import InProcessEventBus, PullPolicy, RetryPolicy
from workers.devtools.embedded import EmbeddedStack
from workers.ports import EventBus, Outgoing

NATS_URL = "nats://127.0.0.1:4222"
DURABLE_KINDS = ("redis", "nats", "kafka")
ALL_KINDS = ("inprocess", *DURABLE_KINDS)
RETRY = RetryPolicy(max_attempts=3, first_backoff_ms=50, max_backoff_ms=200)
Bus = InProcessEventBus | RedisEventBus | NatsEventBus | KafkaEventBus
DurableBus = RedisEventBus | NatsEventBus | KafkaEventBus


def stored(type: str = "OrderPlaced", *, aggregate_id: str = "o-1", version: int = 1) -> Event:
    return new_event("order", aggregate_id, type, {"n": version, "note": "é"}, version=version)


async def eventually(condition: Callable[[], bool], *, timeout_s: float = 8.0) -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout_s``."""
    await wait_for(condition, timeout_s=timeout_s, interval_s=0.01)


@dataclass(eq=False)
class Recorder:
    """A handler that records every event it is given and fails its first ``fail_first`` calls."""

    fail_first: int = 0
    calls: list[Event] = field(default_factory=list)
    block: asyncio.Event | None = None  # when set to an unset Event, calls hang on it

    async def __call__(self, event: Event) -> None:
        self.calls.append(event)
        if self.block is not None:
            await self.block.wait()
        if len(self.calls) <= self.fail_first:
            raise RuntimeError(f"planned failure {len(self.calls)} of {self.fail_first}")

    def ids(self) -> list[str]:
        return [e.id for e in self.calls]


@dataclass
class BusCase:
    """One bus under test, how to read its dead letters, and how to remove what it made."""

    kind: str
    bus: Bus
    dead_letters: Callable[[], Awaitable[list[tuple[bytes, str]]]]
    cleanup: Callable[[], Awaitable[None]]
    inject: Callable[[bytes], Awaitable[None]]  # raw bytes on the bus, as a broken producer
    reopen: Callable[[], Bus]  # a new bus on the same stream, as a restarted process makes

    @property
    def durable(self) -> DurableBus:
        assert not isinstance(self.bus, InProcessEventBus)
        return self.bus


async def require_nats() -> None:
    try:
        nc = await nats.connect(
            NATS_URL, connect_timeout=2, max_reconnect_attempts=0, allow_reconnect=False
        )
    except (nats.errors.Error, OSError, TimeoutError) as e:
        pytest.fail(
            f"NATS is not reachable at {NATS_URL} ({e!r}): the bus tests need a nats-server"
            " with JetStream there (`nats-server -js`); CI and dev machines run one."
        )
    await nc.close()


async def make_redis(stack: EmbeddedStack, name: str) -> BusCase:
    def build() -> RedisEventBus:
        return RedisEventBus(
            stack.urls.redis_url,
            stream=f"bus-test.{name}",
            retry=RETRY,
            pull=PullPolicy(wait_ms=200, redeliver_after_ms=1000),
        )

    bus = build()

    async def dead_letters() -> list[tuple[bytes, str]]:
        entries: Any = await bus.redis.xrange(bus.dead_letter_stream)
        return [(f[b"event"], f[b"reason"].decode()) for _, f in entries]

    async def cleanup() -> None:
        client = aioredis.Redis.from_url(stack.urls.redis_url)
        await client.delete(bus.stream, bus.dead_letter_stream)
        await client.aclose()

    async def inject(raw: bytes) -> None:
        await bus.redis.xadd(bus.stream, {"event": raw})

    return BusCase("redis", bus, dead_letters, cleanup, inject, build)


async def make_nats(name: str) -> BusCase:
    await require_nats()

    def build() -> NatsEventBus:
        return NatsEventBus(
            NATS_URL,
            stream=f"T_{name}",
            subject_prefix=f"test.{name}",
            retry=RETRY,
            pull=PullPolicy(wait_ms=200, redeliver_after_ms=2000),
        )

    bus = build()

    async def dead_letters() -> list[tuple[bytes, str]]:
        js = await bus.jetstream()
        info = await js.stream_info(bus.dead_letter_stream)
        found: list[tuple[bytes, str]] = []
        if info.state.messages == 0:
            return found
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(bus.dead_letter_stream, seq)
            headers = msg.headers or {}
            found.append((msg.data or b"", headers.get("Eventfleet-Reason", "")))
        return found

    async def cleanup() -> None:
        nc = await nats.connect(NATS_URL)
        js = nc.jetstream()
        for stream in (bus.stream, bus.dead_letter_stream):
            try:
                await js.delete_stream(stream)
            except nats.errors.Error:
                pass
        await nc.close()

    async def inject(raw: bytes) -> None:
        js = await bus.jetstream()
        await js.publish(f"{bus.subject_prefix}.OrderPlaced", raw)

    return BusCase("nats", bus, dead_letters, cleanup, inject, build)


async def make_kafka(stack: EmbeddedStack, name: str) -> BusCase:
    # Tansu assigns a group after about a session timeout, and a rejoining durable group
    # waits several: 1 s keeps a subscribe near 1 s (3 s would make a rejoin take 7 s).
    kafka = plain(stack.urls.kafka_url)
    options = KafkaBusOptions(group_id=name, session_timeout_ms=1000, fetch_max_wait_ms=10)
    topic, dlq = f"{name}.stored", f"{name}.dlq"
    admin = AIOKafkaAdminClient(bootstrap_servers=list(kafka.bootstrap_servers))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, 2, 1) for t in (topic, dlq)])
    finally:
        await admin.close()

    def build() -> KafkaEventBus:
        return KafkaEventBus(
            kafka, options=options, topic=topic, dead_letter_topic=dlq, retry=RETRY
        )

    bus = build()

    async def dead_letters() -> list[tuple[bytes, str]]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=list(kafka.bootstrap_servers),
            enable_auto_commit=False,
            fetch_max_wait_ms=10,
        )
        await consumer.start()
        try:
            partitions = [TopicPartition(dlq, p) for p in range(2)]
            consumer.assign(partitions)
            ends = await consumer.end_offsets(partitions)
            await consumer.seek_to_beginning(*partitions)
            found: list[tuple[bytes, str]] = []
            while any([await consumer.position(tp) < ends[tp] for tp in partitions]):
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    for r in records:
                        detail = dict(r.headers).get("dlq_detail", b"").decode()
                        found.append((r.value or b"", detail))
            return found
        finally:
            await consumer.stop()

    async def cleanup() -> None:
        return None  # Tansu keeps topics in memory; unique names keep tests apart

    async def inject(raw: bytes) -> None:
        producer = await bus.started_producer()
        await producer.send(topic, Outgoing(stored().key, raw))  # the partition of stored()

    return BusCase("kafka", bus, dead_letters, cleanup, inject, build)


def event_id(raw: bytes) -> str:
    value: Any = orjson.loads(raw)
    return str(value["id"])


async def _no_dead_letters() -> list[tuple[bytes, str]]:
    return []


async def _nothing() -> None:
    return None


async def _no_inject(raw: bytes) -> None:
    raise NotImplementedError("the in-process bus takes events, never bytes")


async def make_case(kind: str, stack: EmbeddedStack, name: str) -> BusCase:
    if kind == "inprocess":
        bus = InProcessEventBus()
        return BusCase("inprocess", bus, _no_dead_letters, _nothing, _no_inject, InProcessEventBus)
    if kind == "redis":
        return await make_redis(stack, name)
    if kind == "nats":
        return await make_nats(name)
    return await make_kafka(stack, name)


@pytest.fixture
async def make(
    stack: EmbeddedStack, unique_name: str
) -> AsyncIterator[Callable[[str], Awaitable[BusCase]]]:
    """Builds buses of a kind; every one is closed and cleaned up after the test."""
    cases: list[BusCase] = []

    async def build(kind: str) -> BusCase:
        case = await make_case(kind, stack, f"{unique_name}_{len(cases)}")
        cases.append(case)
        return case

    yield build
    for case in cases:
        await case.bus.close()
        await case.cleanup()


@pytest.fixture(params=ALL_KINDS)
async def case(
    request: pytest.FixtureRequest, make: Callable[[str], Awaitable[BusCase]]
) -> BusCase:
    return await make(request.param)


@pytest.fixture(params=DURABLE_KINDS)
async def durable_case(
    request: pytest.FixtureRequest, make: Callable[[str], Awaitable[BusCase]]
) -> BusCase:
    return await make(request.param)


def as_ports(
    a: InProcessEventBus, b: RedisEventBus, c: NatsEventBus, d: KafkaEventBus
) -> list[EventBus]:
    """Never called: mypy checks here that every bus satisfies the EventBus port."""
    return [a, b, c, d]
