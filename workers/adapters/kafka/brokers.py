"""The admin client and group-less consumer the offset readers share: started and stopped, bounded.

The lag reader, ``Positions`` and the appender's progress each ask the brokers about offsets
with one ``AIOKafkaAdminClient`` and one ``AIOKafkaConsumer`` that never joins a group. This is
their one lifecycle: connected on first use within twice the config's timeout, a failed start
drops both (a stopped aiokafka client cannot start again, so the next use makes fresh ones),
and stopping never hangs while Kafka is down.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from topics.errors import StreamUnavailable
from workers.adapters.kafka.closing import close_quietly
from workers.adapters.kafka.config import KafkaConfig

log = logging.getLogger(__name__)

Clients = tuple[AIOKafkaAdminClient, AIOKafkaConsumer]


class BrokerClients:
    """One admin client and one group-less consumer named ``client_id``, kept open between uses."""

    def __init__(
        self, kafka: KafkaConfig, *, client_id: str, **consumer_options: int | str
    ) -> None:
        self._kafka = kafka
        self._client_id = client_id
        self._consumer_options = consumer_options
        self.timeout_s = kafka.timeout_ms / 1000
        """Kafka's time to answer one request (``EVENTFLEET_KAFKA_TIMEOUT_MS``), in seconds."""
        self._clients: Clients | None = None
        self._lock = asyncio.Lock()

    @property
    def current(self) -> Clients | None:
        """The clients if connected, else None (nothing is connected by asking)."""
        return self._clients

    async def open(self) -> Clients:
        """The clients, connected now if they are not; a failed start stops both and raises
        what the driver raised (aiokafka raises KeyError on a refused SCRAM login too)."""
        async with self._lock:
            if self._clients is None:
                kwargs = self._kafka.client_kwargs()
                admin = AIOKafkaAdminClient(**kwargs, client_id=self._client_id)
                consumer = AIOKafkaConsumer(
                    **kwargs,
                    client_id=self._client_id,
                    enable_auto_commit=False,  # no group_id: it never joins one
                    **self._consumer_options,
                )
                self._clients = (admin, consumer)
                try:
                    async with asyncio.timeout(self.timeout_s * 2):
                        await admin.start()
                        await consumer.start()
                except BaseException:
                    await self.stop()
                    raise
            return self._clients

    async def stop(self) -> None:
        """Close both, each within the timeout; an error closing is logged, never raised."""
        clients, self._clients = self._clients, None
        if clients is None:
            return
        admin, consumer = clients
        for close in (admin.close, consumer.stop):
            await close_quietly(close, timeout_s=self.timeout_s, what=self._client_id)

    def unavailable(self, what: str, e: BaseException) -> StreamUnavailable:
        """``e`` as ours: ``Kafka at <servers> <what> (<error type>).``"""
        log.debug("%s: Kafka %s: %r", self._client_id, what, e)
        return StreamUnavailable(f"Kafka at {self._kafka.describe()} {what} ({type(e).__name__}).")
