"""Commands packed through hiredis are byte for byte what redis-py packs; what hiredis would pack
differently (floats, bools, None, a command name with a space) keeps redis-py's packer and its
errors; a client from ``connect_redis`` round-trips through the fast packer on a real Redis."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

from workers.adapters.redis import connect_redis
from workers.adapters.redis.packing import FastPacking, fast_packing
from workers.devtools.embedded import EmbeddedStack

PLAIN = st.one_of(st.text(), st.binary(), st.integers(-(2**63), 2**63 - 1))


@given(st.lists(PLAIN, max_size=20))
def test_plain_arguments_pack_as_redis_py_packs_them(args: list[str | bytes | int]) -> None:
    command = ("EVALSHA", *args)
    ours, theirs = fast_packing(Connection)(), Connection()
    assert b"".join(ours.pack_command(*command)) == b"".join(theirs.pack_command(*command))
    assert b"".join(ours.pack_commands([command, command])) == b"".join(
        theirs.pack_commands([command, command])
    )


@pytest.mark.parametrize(
    "command", [("SET", "k", 1.5), ("CONFIG GET", "maxmemory"), ("SET", "k", "\udcff")]
)
def test_what_hiredis_would_pack_otherwise_keeps_redis_pys_packer(command: tuple[Any, ...]) -> None:
    ours, theirs = fast_packing(Connection)(), Connection()
    try:
        expected = b"".join(theirs.pack_command(*command))
    except UnicodeEncodeError:
        with pytest.raises(UnicodeEncodeError):
            ours.pack_command(*command)
        return
    assert b"".join(ours.pack_command(*command)) == expected


@pytest.mark.parametrize("bad", [True, None])
def test_a_value_redis_py_refuses_is_refused_the_same_way(bad: Any) -> None:
    with pytest.raises(DataError):
        fast_packing(Connection)().pack_command("SET", "k", bad)


def test_one_subclass_per_connection_class() -> None:
    assert fast_packing(Connection) is fast_packing(Connection)
    assert fast_packing(fast_packing(Connection)) is fast_packing(Connection)


async def test_a_connected_client_packs_through_hiredis_and_round_trips(
    stack: EmbeddedStack,
) -> None:
    client = connect_redis(stack.urls.redis_url, timeout_ms=5000)
    assert issubclass(client.connection_pool.connection_class, FastPacking)  # type: ignore[union-attr]
    key = f"packing-{uuid.uuid4().hex}"
    try:
        pipe = client.pipeline(transaction=False)
        pipe.set(key, "ünïcode|1", px=60_000)
        pipe.execute_command("EVAL", "return ARGV[1] .. KEYS[1]", 1, key, 42)
        pipe.get(key)
        assert await pipe.execute() == [True, f"42{key}".encode(), "ünïcode|1".encode()]
    finally:
        await client.delete(key)
        await client.aclose()
