"""Where a consumer group stands, and which offsets hold records (``Positions``), asked of Kafka.

One admin client (committed offsets) and one group-less consumer (first offsets, and the probe
that reads a hole's offsets), connected on first use and kept open; a call that fails drops them,
so the next call connects afresh. Every call is bounded by the config's timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection
from typing import TypeVar

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from workers.adapters.kafka.brokers import BrokerClients
from workers.adapters.kafka.config import KafkaConfig

_PROBE_POLL_MS = 100
T = TypeVar("T")


class KafkaPositions:
    """``Positions`` on Kafka."""

    def __init__(self, kafka: KafkaConfig, *, fetch_max_wait_ms: int = 50) -> None:
        self._brokers = BrokerClients(
            kafka,
            client_id="eventfleet-positions",
            auto_offset_reset="earliest",
            fetch_max_wait_ms=fetch_max_wait_ms,
        )
        self._lock = asyncio.Lock()

    async def committed(
        self, group: str, topic: str, partitions: Collection[int]
    ) -> dict[int, int | None]:
        wanted = [TopicPartition(topic, p) for p in sorted(partitions)]

        async def ask() -> dict[int, int | None]:
            admin, _ = await self._brokers.open()
            listed = await admin.list_consumer_group_offsets(group, partitions=wanted)
            found: dict[int, int | None] = {tp.partition: None for tp in wanted}
            for tp, meta in listed.items():
                if tp.topic == topic and meta.offset >= 0:
                    found[tp.partition] = meta.offset
            return found

        return await self._bounded(f"did not say where group {group} stands on {topic}", ask)

    async def earliest(self, topic: str, partitions: Collection[int]) -> dict[int, int]:
        wanted = [TopicPartition(topic, p) for p in sorted(partitions)]

        async def ask() -> dict[int, int]:
            _, consumer = await self._brokers.open()
            firsts = await consumer.beginning_offsets(wanted)
            return {tp.partition: offset for tp, offset in firsts.items()}

        return await self._bounded(f"did not give the first offsets of {topic}", ask)

    async def offsets_between(self, topic: str, partition: int, start: int, end: int) -> list[int]:
        if end <= start:
            return []
        tp = TopicPartition(topic, partition)

        async def probe() -> list[int]:
            _, consumer = await self._brokers.open()
            consumer.assign([tp])
            consumer.seek(tp, start)
            found: list[int] = []
            while True:
                batches = await consumer.getmany(tp, timeout_ms=_PROBE_POLL_MS)
                for record in batches.get(tp, ()):
                    if record.offset >= end:
                        return found
                    if record.offset >= start:
                        found.append(record.offset)
                # Past ``end`` (control records are skipped, yet move the position), or at the
                # partition's end: nothing more lies in the range.
                position = await consumer.position(tp)
                highwater = consumer.highwater(tp)
                if position >= end or (highwater is not None and position >= highwater):
                    return found

        what = f"did not let offsets {start}..{end - 1} of {topic}/{partition} be read"
        return await self._bounded(what, probe)

    async def stop(self) -> None:
        await self._brokers.stop()

    async def _bounded(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """One call at a time (the probe reassigns the consumer), bounded, driver errors
        translated once; a failed call drops the clients, so the next one connects afresh."""
        async with self._lock:
            try:
                async with asyncio.timeout(self._brokers.timeout_s * 2):
                    return await call()
            except (TimeoutError, KafkaError, OSError, KeyError) as e:
                # aiokafka also raises KeyError on a refused SCRAM login
                await self.stop()
                raise self._brokers.unavailable(what, e) from e
