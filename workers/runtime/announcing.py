"""A producer that announces what it publishes to events.stored on the live feed.

Every writer that stores events (the appender, sync commands through the outbox, the outbox
relay) publishes them to events.stored through this process's producer; wrapping it makes
each of them announce, once Kafka took the events, without a line in the role logic. The
announcement is best effort (``LiveFeed.announce`` never waits or raises): subscribers read
whatever it misses from the store.
"""

from __future__ import annotations

from collections.abc import Sequence

from workers.ports import Delivery, LiveFeed, Outgoing
from workers.runtime.adapters import ProducerClient


class AnnouncingProducer:
    """``producer``, announcing every record it publishes to ``stored_topic`` on ``feed``."""

    def __init__(self, producer: ProducerClient, *, stored_topic: str, feed: LiveFeed) -> None:
        self.producer = producer
        self._stored_topic = stored_topic
        self._feed = feed

    async def send(
        self, topic: str, message: Outgoing, *, partition: int | None = None
    ) -> Delivery:
        delivery = await self.producer.send(topic, message, partition=partition)
        if topic == self._stored_topic:
            self._feed.announce([message])
        return delivery

    async def send_many(self, topic: str, messages: Sequence[Outgoing]) -> list[Delivery]:
        deliveries = await self.producer.send_many(topic, messages)
        if topic == self._stored_topic:
            self._feed.announce(messages)
        return deliveries

    async def start(self) -> None:
        await self.producer.start()

    async def stop(self) -> None:
        await self.producer.stop()

    async def ping(self) -> None:
        await self.producer.ping()

    async def settled(self) -> None:
        await self.producer.settled()
