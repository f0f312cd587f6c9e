"""The offset readers' shared clients: one pair kept open, fresh after a stop or a failed start."""

from __future__ import annotations

import asyncio

import pytest

from workers.adapters.kafka import plain
from workers.adapters.kafka.brokers import BrokerClients
from workers.devtools.embedded import EmbeddedStack, free_port


async def test_the_pair_is_opened_once_and_made_afresh_after_a_stop(stack: EmbeddedStack) -> None:
    brokers = BrokerClients(
        plain(stack.urls.kafka_url.removeprefix("kafka://")), client_id="eventfleet-test"
    )
    assert brokers.current is None  # nothing connects until asked
    try:
        first, again = await asyncio.gather(brokers.open(), brokers.open())
        assert first is again and brokers.current is first  # concurrent callers share one pair
        assert await first[0].list_topics() is not None  # the admin client answers
        await brokers.stop()
        assert brokers.current is None
        fresh = await brokers.open()
        assert fresh[0] is not first[0] and fresh[1] is not first[1]
    finally:
        await brokers.stop()
    await brokers.stop()  # stopping twice is harmless


async def test_a_failed_start_leaves_nothing_open_and_is_translated_once() -> None:
    nobody = f"127.0.0.1:{free_port()}"
    brokers = BrokerClients(plain(nobody, timeout_ms=300), client_id="eventfleet-test")
    with pytest.raises(Exception) as failed:  # what aiokafka raised, as it raised it
        await brokers.open()
    assert brokers.current is None
    error = brokers.unavailable("did not answer", failed.value)
    assert str(error).startswith("Kafka at ") and nobody in str(error)
    assert str(error).endswith(f"did not answer ({type(failed.value).__name__}).")
