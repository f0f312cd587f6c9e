"""A Faust app whose consumers honour our fetch wait (Faust hardcodes 1500 ms; Tansu holds polls).

Tansu does not release a long poll when data arrives, so end-to-end latency equals the
consumer's ``fetch_max_wait_ms``; ``EVENTFLEET_KAFKA_FETCH_MAX_WAIT_MS`` sets it.
"""

from __future__ import annotations

from typing import Any, cast

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

from workers.runtime.highwaters import fetched_highwaters


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):  # type: ignore[misc]
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = getattr(self.app, "fetch_max_wait_ms", 500)
        return consumer

    async def _highwaters(self, partitions: Any) -> Any:
        # Table recovery reads changelogs up to these: take them from a fetch (see highwaters).
        listed = await super()._highwaters(partitions)
        return await fetched_highwaters(
            lambda: self._create_client_consumer(cast(Any, self.transport)),
            listed,
            fetch_wait_ms=getattr(self.app, "fetch_max_wait_ms", 500),
        )


class _Consumer(faust_aiokafka.Consumer):  # type: ignore[misc]
    def _new_consumer_thread(self) -> Any:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(faust_aiokafka.Transport):  # type: ignore[misc]
    Consumer = _Consumer


class FleetApp(faust.App):  # type: ignore[misc]
    """faust.App with a configurable consumer fetch wait."""

    fetch_max_wait_ms: int = 500

    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)
