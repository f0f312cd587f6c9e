"""The Redis batcher when its caller goes away mid round trip: the calls queued meanwhile still
get an answer within the timeout (here: unavailable), and nothing is left for asyncio to report
as an exception never retrieved."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator

import pytest

from topics.errors import MarkerUnavailable
from workers.adapters.redis import SCRIPTS, RedisBatcher, connect_redis
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
        await asyncio.wait_for(rider, 5)  # sent in the next round trip: it fails in time
    del carrier
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        gc.collect()
        await asyncio.sleep(0)
    assert "never retrieved" not in caplog.text
    await client.aclose()
