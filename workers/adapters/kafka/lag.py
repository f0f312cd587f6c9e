"""Consumer group lag read from the brokers: committed offsets against high-water marks.

Pods report their own lag only while they live; this reader asks the brokers, so a group
whose pods all died still shows its lag (and the lag keeps growing, which is the point).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from topics.errors import StreamUnavailable
from workers.adapters.kafka.config import KafkaConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """How far one consumer group is behind on one partition."""

    group: str
    topic: str
    partition: int
    committed: int  # the next offset the group will read
    high_water: int

    @property
    def lag(self) -> int:
        return max(0, self.high_water - self.committed)


class KafkaLagReader:
    """Reads every named group's lag; one admin client and one group-less consumer, kept open."""

    def __init__(self, kafka: KafkaConfig) -> None:
        self._kafka = kafka
        self._timeout_s = kafka.timeout_ms / 1000
        self._admin: AIOKafkaAdminClient | None = None
        self._offsets: AIOKafkaConsumer | None = None

    def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        kwargs = self._kafka.client_kwargs()
        admin = AIOKafkaAdminClient(**kwargs, client_id="eventfleet-lag")
        # No group_id: it only asks for end offsets (ListOffsets), it never joins a group.
        offsets = AIOKafkaConsumer(**kwargs, client_id="eventfleet-lag", enable_auto_commit=False)
        return admin, offsets

    async def start(self) -> None:
        """Connect (again): fresh clients each time, as a stopped client cannot restart."""
        self._admin, self._offsets = admin, offsets = self._clients()
        try:
            async with asyncio.timeout(self._timeout_s * 2):
                await admin.start()
                await offsets.start()
        except Exception as e:  # aiokafka also raises KeyError on a refused SCRAM login
            await self.stop()
            raise self._unavailable("refused the lag reader's connection", e) from e

    async def stop(self) -> None:
        admin, offsets, self._admin, self._offsets = self._admin, self._offsets, None, None
        for close in (admin.close if admin else None, offsets.stop if offsets else None):
            if close is None:
                continue
            try:
                async with asyncio.timeout(self._timeout_s):
                    await close()
            except (TimeoutError, KafkaError, OSError):
                pass  # stopping must not hang while Kafka is down

    async def groups(self, *, prefix: str) -> list[str]:
        """The broker's consumer groups whose id starts with ``prefix``, sorted."""
        admin = self._connected()[0]
        try:
            async with asyncio.timeout(self._timeout_s * 2):
                listed = await admin.list_consumer_groups()
        except (TimeoutError, KafkaError, OSError) as e:
            raise self._unavailable("did not list its consumer groups in time", e) from e
        return sorted({str(entry[0]) for entry in listed if str(entry[0]).startswith(prefix)})

    async def topics(self, *, prefix: str) -> list[str]:
        """The broker's topics whose name starts with ``prefix``, sorted."""
        admin = self._connected()[0]
        try:
            async with asyncio.timeout(self._timeout_s * 2):
                listed = await admin.list_topics()
        except (TimeoutError, KafkaError, OSError) as e:
            raise self._unavailable("did not list its topics in time", e) from e
        return sorted(str(topic) for topic in listed if str(topic).startswith(prefix))

    async def read(
        self,
        groups: Mapping[str, Sequence[str]],
        *,
        discovered: Mapping[str, Sequence[str]] | None = None,
    ) -> list[PartitionLag]:
        """Lag of each group on each of its topics; a group that never committed is left out.

        A ``discovered`` group is measured only on the partitions it has committed (it may not
        read every topic it is asked about).
        """
        self._connected()
        try:
            async with asyncio.timeout(self._timeout_s * 2):
                committed = await self._committed(groups)
                for group, by_tp in (await self._committed(discovered or {})).items():
                    committed[group] = {tp: o for tp, o in by_tp.items() if o >= 0}
                offsets = self._connected()[1]
                wanted = sorted({tp for by_tp in committed.values() for tp in by_tp})
                high_water = await offsets.end_offsets(wanted) if wanted else {}
        except (TimeoutError, KafkaError, OSError) as e:
            raise self._unavailable("did not answer the lag reader in time", e) from e
        return [
            PartitionLag(group, tp.topic, tp.partition, max(0, offset), high_water.get(tp, 0))
            for group, by_tp in committed.items()
            for tp, offset in sorted(by_tp.items())
        ]

    def _connected(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._admin is None or self._offsets is None:
            raise StreamUnavailable("the lag reader is not connected; start() it first.")
        return self._admin, self._offsets

    async def _committed(
        self, groups: Mapping[str, Sequence[str]]
    ) -> dict[str, dict[TopicPartition, int]]:
        admin = self._connected()[0]
        partitions = await self._partitions({t for ts in groups.values() for t in ts})
        found: dict[str, dict[TopicPartition, int]] = {}
        for group, topics in groups.items():
            wanted = [tp for topic in topics for tp in partitions.get(topic, [])]
            if not wanted:
                continue  # its topics do not exist (yet)
            listed = await admin.list_consumer_group_offsets(group, partitions=wanted)
            by_tp = {tp: meta.offset for tp, meta in listed.items()}
            if any(offset >= 0 for offset in by_tp.values()):
                found[group] = by_tp  # else never committed: not deployed, or not started yet
        return found

    async def _partitions(self, topics: set[str]) -> dict[str, list[TopicPartition]]:
        if not topics:
            return {}
        described = await self._connected()[0].describe_topics(sorted(topics))
        return {
            d["topic"]: [TopicPartition(d["topic"], p["partition"]) for p in d["partitions"]]
            for d in described
            if d.get("partitions")
        }

    def _unavailable(self, what: str, e: BaseException) -> StreamUnavailable:
        log.debug("lag reader: Kafka %s: %r", what, e)
        return StreamUnavailable(f"Kafka at {self._kafka.describe()} {what} ({type(e).__name__}).")
