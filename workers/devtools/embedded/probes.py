"""Loopback ports and readiness probes: is a port free, and does the server on it answer?"""

from __future__ import annotations

import asyncio
import errno
import os
import random
import socket
from collections.abc import Sequence
from pathlib import Path

import redis.asyncio as aioredis
from aiokafka.admin import AIOKafkaAdminClient
from pymongo import AsyncMongoClient

from topics.jsonvalue import JsonObject
from workers.devtools.embedded.common import HOST


def loopback_mongo_url(port: int) -> str:
    # directConnection keeps the driver on this address: with replicaSet=... it would follow
    # the advertised host list and bypass a fault-injection proxy placed in front.
    return f"mongodb://{HOST}:{port}/?directConnection=true"


def free_port(*, also: Sequence[int] = ()) -> int:
    """A loopback port that is free now and stays free until a server binds it on purpose
    (with ``also``: ``port + offset`` free too, e.g. 10000 for a Redis Cluster bus).

    A port from ``bind(0)`` comes from the kernel's ephemeral range, where every outgoing
    connection's local port comes from too: between this call and the server's own bind
    (another process, up to seconds later) any connect on the machine may take it, and on a
    busy machine one did (a test's Redis refused "port in use"). Ports below that range are
    never handed out implicitly, so one is taken from there, at random; bound without
    SO_REUSEADDR, so a port still in TIME_WAIT is not taken either. Only where no such range
    is left does ``bind(0)`` decide.

    Two callers may still pick one port before either binds it: a process never hands out a
    port twice (until it has handed out ``_REMEMBERED``), and processes that run side by side
    (parallel test workers, and what each starts) take disjoint shares of the range by
    ``EVENTFLEET_PORT_SHARE=i/n`` (ports ``p`` with ``p % n == i``): a fleet process of one
    test worker was refused the HTTP port it was given, taken in between by another.
    """
    first_ephemeral = _ephemeral_floor()
    top = first_ephemeral - max(also, default=0)
    if top - _LOWEST >= _ENOUGH:
        share, of = port_share()
        for _ in range(200):
            port = random.randrange(_LOWEST, top)
            port += (share - port) % of  # the next port of this process's share
            if port >= top or port in _handed:
                continue
            if all(_bindable(port + offset) for offset in (0, *also)):
                if len(_handed) >= _REMEMBERED:
                    _handed.clear()
                _handed.add(port)
                return port
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


PORT_SHARE = "EVENTFLEET_PORT_SHARE"
"""``i/n``: ``free_port`` hands out only the ports ``p`` with ``p % n == i``; unset: every port."""


def port_share() -> tuple[int, int]:
    """``(i, n)`` from ``EVENTFLEET_PORT_SHARE``, ``(0, 1)`` when unset; ValueError naming it
    when it is not ``i/n`` with ``0 <= i < n``."""
    raw = os.environ.get(PORT_SHARE, "")
    if not raw:
        return 0, 1
    share, _, of = raw.partition("/")
    try:
        i, n = int(share), int(of)
    except ValueError:
        i, n = -1, 0
    if not 0 <= i < n:
        raise ValueError(
            f"{PORT_SHARE}={raw!r}: expected i/n with 0 <= i < n (e.g. 0/4 for the first of "
            "four parallel test workers), or leave it unset"
        )
    return i, n


_handed: set[int] = set()
"""Ports this process handed out and a server may not have bound yet."""
_REMEMBERED = 1000


_LOWEST = 10_000
"""Below it, ports that well-known services listen on."""
_ENOUGH = 2_000
_EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _ephemeral_floor() -> int:
    """The first port of the kernel's ephemeral range (Linux; elsewhere its IANA default)."""
    try:
        return int(_EPHEMERAL.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 49_152


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


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
