"""Consumer group lag read from the brokers: committed offsets against high-water marks.

Pods report their own lag only while they live; this reader asks the brokers, so a group
whose pods all died still shows its lag (and the lag keeps growing, which is the point).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from topics.errors import StreamUnavailable
from workers.adapters.kafka.brokers import BrokerClients, Clients
from workers.adapters.kafka.config import KafkaConfig


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


Listed = TypeVar("Listed")


class KafkaLagReader:
    """Reads every named group's lag; one admin client and one group-less consumer, kept open."""

    def __init__(self, kafka: KafkaConfig) -> None:
        self._brokers = BrokerClients(kafka, client_id="eventfleet-lag")
        self._timeout_s = self._brokers.timeout_s

    async def start(self) -> None:
        """Connect (again): fresh clients each time, as a stopped client cannot restart."""
        await self._brokers.stop()
        try:
            await self._brokers.open()
        except Exception as e:  # aiokafka also raises KeyError on a refused SCRAM login
            raise self._brokers.unavailable("refused the lag reader's connection", e) from e

    async def stop(self) -> None:
        await self._brokers.stop()

    async def groups(self, *, prefix: str) -> list[str]:
        """The broker's consumer groups whose id starts with ``prefix``, sorted."""
        listed = await self._asked(
            "did not list its consumer groups in time", AIOKafkaAdminClient.list_consumer_groups
        )
        return sorted({str(entry[0]) for entry in listed if str(entry[0]).startswith(prefix)})

    async def topics(self, *, prefix: str) -> list[str]:
        """The broker's topics whose name starts with ``prefix``, sorted."""
        listed = await self._asked(
            "did not list its topics in time", AIOKafkaAdminClient.list_topics
        )
        return sorted(str(topic) for topic in listed if str(topic).startswith(prefix))

    async def _asked(
        self, what: str, listing: Callable[[AIOKafkaAdminClient], Awaitable[Listed]]
    ) -> Listed:
        """One listing by the admin client, bounded, its failure translated."""
        admin = self._connected()[0]
        try:
            async with asyncio.timeout(self._timeout_s * 2):
                return await listing(admin)
        except (TimeoutError, KafkaError, OSError) as e:
            raise self._brokers.unavailable(what, e) from e

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
            raise self._brokers.unavailable("did not answer the lag reader in time", e) from e
        return [
            PartitionLag(group, tp.topic, tp.partition, max(0, offset), high_water.get(tp, 0))
            for group, by_tp in committed.items()
            for tp, offset in sorted(by_tp.items())
        ]

    def _connected(self) -> Clients:
        clients = self._brokers.current
        if clients is None:
            raise StreamUnavailable("the lag reader is not connected; start() it first.")
        return clients

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
