"""Loopback ports and readiness probes: is a port free, and does the server on it answer?"""

from __future__ import annotations

import asyncio
import errno
import socket

import redis.asyncio as aioredis
from aiokafka.admin import AIOKafkaAdminClient
from pymongo import AsyncMongoClient

from topics.jsonvalue import JsonObject
from workers.devtools.embedded.common import HOST


def loopback_mongo_url(port: int) -> str:
    # directConnection keeps the driver on this address: with replicaSet=... it would follow
    # the advertised host list and bypass a fault-injection proxy placed in front.
    return f"mongodb://{HOST}:{port}/?directConnection=true"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    # Bind as the servers do (SO_REUSEADDR) so a port in TIME_WAIT after a restart counts as free.
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return False
            raise
    return True


async def _accepts(port: int) -> None:
    # A refused connect fails at once, whereas the drivers retry until their own timeouts (and
    # aiokafka logs each refusal as an error): knock first, then ask the real question.
    _, writer = await asyncio.open_connection(HOST, port)
    writer.close()
    await writer.wait_closed()


async def probe_kafka(port: int) -> None:
    await _accepts(port)
    # An accepted connection is not enough: producers bootstrap from metadata.
    admin = AIOKafkaAdminClient(bootstrap_servers=f"{HOST}:{port}", request_timeout_ms=1000)
    try:
        await admin.start()
        await admin.describe_cluster()
    finally:
        await admin.close()


async def probe_mongo(port: int) -> None:
    await _accepts(port)
    client: AsyncMongoClient[JsonObject] = AsyncMongoClient(
        loopback_mongo_url(port), serverSelectionTimeoutMS=1000, connectTimeoutMS=1000
    )
    try:
        await client.admin.command("ping")
    finally:
        await client.close()


async def probe_redis(port: int) -> None:
    await _accepts(port)
    await probe_redis_url(f"redis://{HOST}:{port}/0")


async def probe_redis_url(url: str) -> None:
    client = aioredis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        await client.ping()
    finally:
        await client.aclose()
