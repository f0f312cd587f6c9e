"""How far the appender has decided the events topic, read from the brokers (``AppendProgress``).

A key's partition is where the default partitioner puts it (murmur2, as every Kafka client);
its end offset is read once per question — from a fetch response's high-water mark, since
Tansu answers ListOffsets with the end of all but the last batch (a short answer would make a
stale head look settled) — then the committed offsets of the fleet's groups
(whatever name the appender runs under: ``<group>-appender``, ``-all``, ``-dev``, …) are polled
until one of them has passed it. The offset ledger guarantees a committed offset never passes
an undecided record, so "committed past the end offset" means "every record there is decided".
"""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from workers.adapters.kafka.brokers import BrokerClients
from workers.adapters.kafka.config import KafkaConfig
from workers.adapters.partitions import check_key, partition_for

GROUPS_TTL_S = 30.0
GROUPS_RETRY_S = 1.0  # while no group has passed the end offset, list the groups again this often
POLL_S = 0.1


class KafkaAppendProgress:
    """The appender's progress on one topic, from group offsets and end offsets."""

    def __init__(
        self, kafka: KafkaConfig, *, topic: str, partitions: int, group_prefix: str
    ) -> None:
        self._topic = topic
        self._partitions = partitions
        self._prefix = group_prefix
        self._brokers = BrokerClients(
            kafka,
            client_id="eventfleet-progress",
            fetch_max_wait_ms=10,  # an empty partition answers at once (Tansu: long polls hold)
        )
        self._timeout_s = self._brokers.timeout_s
        self._groups: list[str] = []
        self._groups_at = 0.0
        self._fetching = asyncio.Lock()

    async def caught_up(self, aggregate_key: bytes, *, within_s: float) -> bool:
        check_key(aggregate_key)
        tp = TopicPartition(self._topic, partition_for(aggregate_key, self._partitions))
        deadline = time.monotonic() + within_s
        try:
            admin, offsets = await self._brokers.open()
            async with asyncio.timeout(self._timeout_s):
                end = await self._end(offsets, tp)
            if end == 0:
                return True  # nothing was ever produced there
            while True:
                async with asyncio.timeout(self._timeout_s):
                    for group in await self._consumers(admin):
                        found = await admin.list_consumer_group_offsets(group, partitions=[tp])
                        meta = found.get(tp)
                        if meta is not None and meta.offset >= end:
                            return True
                if time.monotonic() + POLL_S > deadline:
                    return False
                await asyncio.sleep(POLL_S)
        except (TimeoutError, KafkaError, OSError) as e:
            await self.stop()  # connect afresh next time
            raise self._brokers.unavailable("did not say how far the appender is", e) from e

    async def _end(self, offsets: AIOKafkaConsumer, tp: TopicPartition) -> int:
        """The partition's end: listed, then raised to the high-water mark a fetch reports."""
        async with self._fetching:  # one assignment at a time on the shared consumer
            listed = (await offsets.end_offsets([tp]))[tp]
            offsets.assign([tp])
            offsets.seek(tp, max(listed - 1, 0))  # a record to fetch, so the fetch returns at once
            while offsets.highwater(tp) is None:
                await offsets.getmany(tp, timeout_ms=100)
            return int(max(listed, offsets.highwater(tp) or 0))

    async def _consumers(self, admin: AIOKafkaAdminClient) -> list[str]:
        """The fleet's groups, listed again after GROUPS_TTL_S (GROUPS_RETRY_S while there are
        none yet: a fleet just started)."""
        age = time.monotonic() - self._groups_at
        if age > GROUPS_TTL_S or (not self._groups and age > GROUPS_RETRY_S):
            listed = await admin.list_consumer_groups()
            self._groups = sorted(g[0] for g in listed if str(g[0]).startswith(self._prefix))
            self._groups_at = time.monotonic()
        return self._groups

    async def stop(self) -> None:
        await self._brokers.stop()
