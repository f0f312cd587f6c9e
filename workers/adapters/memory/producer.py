"""The in-memory producer: records kept per topic in order, partitioned by key as Kafka clients
do."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

from topics.errors import StreamUnavailable
from workers.adapters.memory.common import Faults, Switchable, down_message
from workers.adapters.partitions import murmur2, partition_for
from workers.ports import Delivery, Outgoing, Producer, Record

__all__ = ["MemoryProducer", "murmur2", "partition_for"]


class MemoryProducer(Switchable):
    """Keeps every acknowledged record per topic, in order, with its partition and offset.

    ``partitions`` gives a topic's partition count (others get ``default_partitions``, as a
    broker that creates topics on first use). ``fail_after(n)`` acknowledges only the first
    ``n`` records of the next call, then raises, as a produce that timed out part way.
    """

    def __init__(
        self, *, partitions: Mapping[str, int] | None = None, default_partitions: int = 1
    ) -> None:
        self.faults = Faults(lambda what: StreamUnavailable(down_message("producer", what)))
        self._partitions = dict(partitions or {})
        self._default_partitions = default_partitions
        self._records: dict[str, list[Record]] = {}
        self._next_offset: dict[tuple[str, int], int] = {}
        self._spread = itertools.count()  # keyless records: round robin
        self._cut_after: int | None = None

    async def start(self) -> None:
        """Nothing to connect: here for the lifecycle a fleet process gives every producer."""

    async def stop(self) -> None:
        """Nothing to close."""

    async def ping(self) -> None:
        """Raises the producer's unavailable error while a test holds it down."""
        await self.faults.enter("ping", "pinging")

    async def settled(self) -> None:
        """Nothing is ever in flight here: a call lands before it returns, or never."""

    def partitions(self, topic: str) -> int:
        return self._partitions.get(topic, self._default_partitions)

    def records(self, topic: str, *, partition: int | None = None) -> list[Record]:
        """The acknowledged records of ``topic`` (one partition, or all), in the order produced."""
        kept = self._records.get(topic, [])
        return [r for r in kept if partition is None or r.partition == partition]

    def topics(self) -> list[str]:
        return sorted(self._records)

    def fail_after(self, delivered: int) -> None:
        """The next call acknowledges its first ``delivered`` records, then raises unavailable."""
        if delivered < 0:
            raise ValueError(f"fail_after needs delivered >= 0, got {delivered}")
        self._cut_after = delivered

    async def send(
        self, topic: str, message: Outgoing, *, partition: int | None = None
    ) -> Delivery:
        [delivery] = await self.send_many(topic, [message], partition=partition)
        return delivery

    async def send_many(
        self, topic: str, messages: Sequence[Outgoing], *, partition: int | None = None
    ) -> list[Delivery]:
        """Produce all (to ``partition``, or by key), keeping their order per key, and wait for
        every acknowledgement."""
        count = self.partitions(topic)
        if partition is not None and not 0 <= partition < count:
            raise ValueError(
                f"{topic} has partitions 0 to {count - 1}; there is no partition {partition}"
            )
        if not messages:
            return []
        await self.faults.enter(
            "send", f"producing {len(messages)} records to {topic}", target=topic
        )
        cut, self._cut_after = self._cut_after, None
        for message in messages:  # one record that is not bytes: nothing is sent
            message.check_bytes()
        deliveries = [self._append(topic, message, partition, count) for message in messages[:cut]]
        if cut is not None:
            raise StreamUnavailable(
                f"Kafka did not acknowledge every record for {topic}: "
                f"{len(deliveries)} of {len(messages)} were (a test cut the call short)."
            )
        return deliveries

    def _append(self, topic: str, message: Outgoing, partition: int | None, count: int) -> Delivery:
        if partition is None:
            key = message.key
            partition = partition_for(key, count) if key is not None else next(self._spread) % count
        offset = self._next_offset.get((topic, partition), 0)
        self._next_offset[(topic, partition)] = offset + 1
        record = Record(
            topic, partition, offset, message.key, message.value, tuple(message.headers)
        )
        self._records.setdefault(topic, []).append(record)
        return Delivery(topic, partition, offset)


def _implements(producer: MemoryProducer) -> Producer:
    """Never called: mypy checks here that the class keeps the port's signatures."""
    return producer
