"""Buses facing a server that is down or drops connections: clear retriable errors, no hang, recovery."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from tests.bus.conftest import (
    NATS_URL,
    BusCase,
    Recorder,
    eventually,
    require_nats,
    stored,
)
from tests.faults import TcpProxy
from tests.waiting import wait_for, within
from topics.errors import ConfigError, InvalidInput, Unavailable
from workers.adapters.kafka import KafkaEventBus, plain
from workers.adapters.nats import NatsEventBus
from workers.adapters.redis import RedisEventBus
from workers.bus import BusUnavailable, PullPolicy, RetryPolicy
from workers.devtools.embedded import EmbeddedStack, free_port


def _down_bus(kind: str) -> RedisEventBus | NatsEventBus | KafkaEventBus:
    port = free_port()  # nothing listens there
    if kind == "redis":
        return RedisEventBus(f"redis://127.0.0.1:{port}", timeout_ms=500)
    if kind == "nats":
        return NatsEventBus(f"nats://127.0.0.1:{port}", timeout_ms=500)
    return KafkaEventBus(plain(f"kafka://127.0.0.1:{port}", timeout_ms=500))


@pytest.mark.parametrize("kind", ["redis", "nats", "kafka"])
async def test_a_bus_whose_server_is_down_raises_retriable_errors_in_time(kind: str) -> None:
    bus = _down_bus(kind)
    started = time.monotonic()

    with pytest.raises(Unavailable) as published:
        await bus.publish(stored())
    with pytest.raises(BusUnavailable):
        await bus.subscribe("*", Recorder())
    await bus.close()

    assert published.value.retriable
    assert time.monotonic() - started < 8  # bounded by the timeouts, never a hang


async def test_bad_durable_names_and_retry_policies_are_refused(durable_case: BusCase) -> None:
    for bad in ("", "a.b", "a b", "-x", "x" * 65):
        with pytest.raises(InvalidInput, match="durable name"):
            await durable_case.durable.subscribe("*", Recorder(), durable=bad)
    with pytest.raises(ConfigError, match="max_attempts must be at least 1"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ConfigError, match="first_backoff_ms"):
        RetryPolicy(first_backoff_ms=500, max_backoff_ms=100)


async def test_a_redis_subscriber_survives_dropped_connections(
    stack: EmbeddedStack, unique_name: str
) -> None:
    host, port = stack.urls.redis_url.split("//")[1].split("/")[0].split(":")
    direct = RedisEventBus(stack.urls.redis_url, stream=f"bus-test.{unique_name}")
    async with TcpProxy(host, int(port)) as proxy:
        proxied = RedisEventBus(
            f"redis://{proxy.address}/0",
            stream=direct.stream,
            pull=PullPolicy(wait_ms=200),
            timeout_ms=500,
            retry=RetryPolicy(first_backoff_ms=50, max_backoff_ms=200),
        )
        got = Recorder()
        await proxied.subscribe("*", got, durable="survivor")
        proxy.drop()  # every connection reset, new ones refused
        with pytest.raises(BusUnavailable):
            await proxied.publish(stored(version=1))
        missed = stored(version=2)
        await direct.publish(missed)
        proxy.resume()

        await eventually(lambda: len(got.calls) == 1)
        assert got.calls == [missed]
        proxy.drop()  # down again: close must still return in time and leave no task
        await within(proxied.close(), timeout_s=5, what="the bus to close with its server down")
        assert _bus_tasks() == []
    await direct.redis.delete(direct.stream)
    await direct.close()


async def test_a_redis_subscriber_whose_stream_is_deleted_starts_over_at_its_end(
    stack: EmbeddedStack, unique_name: str
) -> None:
    bus = RedisEventBus(
        stack.urls.redis_url,
        stream=f"bus-test.{unique_name}",
        pull=PullPolicy(wait_ms=100),
        retry=RetryPolicy(first_backoff_ms=20, max_backoff_ms=100),
    )
    got = Recorder()
    await bus.subscribe("*", got, durable="again")
    await bus.redis.delete(bus.stream)  # the stream and its consumer groups are gone

    async def group_again() -> bool:
        with contextlib.suppress(Exception):  # no such key until the group is made again
            return len(await bus.redis.xinfo_groups(bus.stream)) == 1
        return False

    await wait_for(group_again, timeout_s=8, what="the group made again")  # reads met NOGROUP
    after = stored(version=1)
    await bus.publish(after)
    await eventually(lambda: got.calls == [after])
    await within(bus.close(), timeout_s=5, what="the bus to close")
    cleanup = RedisEventBus(stack.urls.redis_url, stream=bus.stream)
    await cleanup.redis.delete(bus.stream)
    await cleanup.close()


async def test_a_nats_subscriber_survives_dropped_connections(unique_name: str) -> None:
    direct = NatsEventBus(NATS_URL, stream=f"T_{unique_name}", subject_prefix=f"t.{unique_name}")
    await require_nats()
    async with TcpProxy("127.0.0.1", 4222) as proxy:
        proxied = NatsEventBus(
            f"nats://{proxy.address}",
            stream=direct.stream,
            subject_prefix=direct.subject_prefix,
            pull=PullPolicy(wait_ms=200),
            timeout_ms=500,
        )
        got = Recorder()
        await proxied.subscribe("*", got, durable="survivor")
        proxy.drop()
        with pytest.raises(BusUnavailable):
            await proxied.publish(stored(version=1))
        missed = stored(version=2)
        await direct.publish(missed)
        proxy.resume()

        await eventually(lambda: len(got.calls) == 1)
        assert got.calls == [missed]
        proxy.drop()  # down again: close must still return in time and leave no task
        await within(proxied.close(), timeout_s=5, what="the bus to close with its server down")
        assert _bus_tasks() == []
    js = await direct.jetstream()
    for stream in (direct.stream, direct.dead_letter_stream):
        await js.delete_stream(stream)
    await direct.close()


def _bus_tasks() -> list[str]:
    return [t.get_name() for t in asyncio.all_tasks() if " bus " in t.get_name() and not t.done()]
