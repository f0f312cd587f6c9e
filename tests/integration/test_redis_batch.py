"""The Redis batcher: when its caller goes away mid round trip, the calls queued meanwhile still
get an answer within the timeout (here: unavailable), and nothing is left for asyncio to report
as an exception never retrieved; a forgotten script is loaded again and a refused call fails
alone, whether it went alone or in a pipeline."""

from __future__ import annotations

import asyncio
import gc
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from tests.waiting import within
from topics.errors import MarkerUnavailable
from workers.adapters.redis import SCRIPTS, RedisBatcher, connect_redis
from workers.adapters.redis.replies import Lua
from workers.devtools.embedded import EmbeddedStack
from workers.metrics import create_metrics


@pytest.fixture
async def silent_redis() -> AsyncIterator[str]:
    """A server that takes connections and never answers: a Redis frozen mid round trip."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"redis://127.0.0.1:{port}/0"
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_a_caller_cancelled_mid_round_trip_leaves_no_unread_error_and_the_rest_are_answered(
    silent_redis: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = connect_redis(silent_redis, timeout_ms=500)
    batcher = RedisBatcher(
        client, scripts=SCRIPTS, timeout_ms=500, latency=create_metrics().marker_latency
    )
    carrier = asyncio.create_task(batcher.call("GET", ("a",), ()))
    await asyncio.sleep(0)  # the carrier sends the round trip itself
    rider = asyncio.create_task(batcher.call("GET", ("b",), ()))
    await asyncio.sleep(0.05)
    carrier.cancel()  # its client hung up while Redis was frozen, before the timeout
    with pytest.raises(asyncio.CancelledError):
        await carrier
    with pytest.raises(MarkerUnavailable):
        # sent in the next round trip: it fails in time
        await within(rider, timeout_s=5, what="the rider to fail")
    del carrier
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        gc.collect()
        await asyncio.sleep(0)
    assert "never retrieved" not in caplog.text
    await client.aclose()


@dataclass
class Batching:
    batcher: RedisBatcher
    script: Lua
    """A script no Redis has seen before this test: its first call meets NOSCRIPT, as after a
    restart or a failover (a SCRIPT FLUSH would do that to every test sharing the server)."""


@pytest.fixture
async def batching(stack: EmbeddedStack) -> AsyncIterator[Batching]:
    client = connect_redis(stack.urls.redis_url, timeout_ms=2000)
    script = Lua(f"-- {uuid.uuid4()}\nreturn ARGV[1] .. KEYS[1]")
    latency = create_metrics().marker_latency
    yield Batching(
        RedisBatcher(client, scripts=(script,), timeout_ms=2000, latency=latency), script
    )
    await client.aclose()


@pytest.mark.parametrize("together", [1, 3], ids=["alone", "pipelined"])
async def test_a_script_redis_does_not_know_is_loaded_and_sent_again(
    batching: Batching, together: int
) -> None:
    """One call goes as it is, several in a pipeline: either way a script Redis does not know
    costs one reload, not an error."""
    key = f"batch-{uuid.uuid4().hex}"
    batcher, script = batching.batcher, batching.script
    answers = await asyncio.gather(
        *(batcher.call(script, (key,), (str(n),)) for n in range(together))
    )
    assert answers == [f"{n}{key}".encode() for n in range(together)]


@pytest.mark.parametrize("together", [1, 3], ids=["alone", "pipelined"])
async def test_a_call_redis_refuses_fails_alone_and_the_batcher_goes_on(
    batching: Batching, together: int
) -> None:
    batcher = batching.batcher
    key = f"batch-{uuid.uuid4().hex}"
    await batcher.redis.set(key, "not a number")
    calls = [batcher.call("INCR", (key,), ())] + [
        batcher.call("GET", (key,), ()) for _ in range(together - 1)
    ]
    answers = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(answers[0], MarkerUnavailable) and "refused" in str(answers[0])
    assert answers[1:] == [b"not a number"] * (together - 1)
    assert await batcher.call("GET", (key,), ()) == b"not a number"
    await batcher.redis.delete(key)


async def test_a_bundled_round_trip_answers_each_call_as_redis_answers_it_alone(
    batching: Batching,
) -> None:
    """On a standalone Redis a round trip is one call of the bundle script: each call still gets
    its own reply (a string, nil, a number, an array, a status), in order, and an error only
    its own call."""
    batcher, script = batching.batcher, batching.script
    key, bits = f"batch-{uuid.uuid4().hex}", f"batch-{uuid.uuid4().hex}"
    calls = [
        batcher.call("SET", (key,), ("v", "PX", "60000")),
        batcher.call("GET", (key,), ()),
        batcher.call("GET", (f"{key}-missing",), ()),
        batcher.call("SETBIT", (bits, "7", "1"), ()),
        batcher.call("GETBIT", (bits, "7"), ()),
        batcher.call("BITFIELD", (bits,), ("GET", "u1", "7", "GET", "u1", "6")),
        batcher.call(script, (key,), ("x",)),
        batcher.call("INCR", (key,), ()),  # refused: not a number
        batcher.call("PING", (), ()),
    ]
    answers = await asyncio.gather(*calls, return_exceptions=True)
    assert answers[:7] == [True, b"v", None, 0, 1, [1, 0], f"x{key}".encode()]
    assert isinstance(answers[7], MarkerUnavailable) and "refused" in str(answers[7])
    assert answers[8] == 1  # a status, bundled or not: true
    await batcher.redis.delete(key, bits)


async def test_a_round_trip_of_more_calls_than_one_bundle_holds_answers_every_call(
    batching: Batching,
) -> None:
    from workers.adapters.redis.bundle import MAX_CALLS

    batcher, script = batching.batcher, batching.script
    key = f"batch-{uuid.uuid4().hex}"
    count = 2 * MAX_CALLS + 7
    answers = await asyncio.gather(*(batcher.call(script, (key,), (str(n),)) for n in range(count)))
    assert answers == [f"{n}{key}".encode() for n in range(count)]


async def test_a_call_too_large_for_the_bundle_goes_with_its_round_trip_as_a_pipeline(
    batching: Batching,
) -> None:
    """The filter's notes of a big batch: one BITFIELD of 12,000 arguments, past what Lua can
    rebuild; it and the calls beside it are all answered (a bundle holding it failed them all)."""
    batcher, script = batching.batcher, batching.script
    bits, key = f"batch-{uuid.uuid4().hex}", f"batch-{uuid.uuid4().hex}"
    ops: list[str] = []
    for position in range(3000):
        ops += ["SET", "u1", str(position), "1"]
    answers = await asyncio.gather(
        batcher.call("PING", (), ()),
        batcher.call("BITFIELD", (bits,), tuple(ops)),
        batcher.call(script, (key,), ("a",)),
        batcher.call("GETBIT", (bits, "2999"), ()),
    )
    # The old bits, once per position (the fixture's script meets NOSCRIPT, and a round trip
    # that meets it is sent again whole: the notes are set twice, which changes nothing).
    assert answers[0] and isinstance(answers[1], list) and len(answers[1]) == 3000
    assert answers[2:] == [f"a{key}".encode(), 1]
    await batcher.redis.delete(bits)
