"""What the console's operator actions ask of Kafka: topics and their partitions, a consumer
group's members and committed offsets, offsets by time, and committing a group's offsets
without joining it (what ``kafka-consumer-groups --reset-offsets`` does).

Each call opens its own admin client and group-less consumer (``BrokerClients``) and closes
them: an operator's action is rare, and nothing is kept open for it. Every call is bounded by
twice the config's timeout; driver errors become StreamUnavailable, once, here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError, for_code

from workers.adapters.kafka.brokers import BrokerClients
from workers.adapters.kafka.closing import close_quietly
from workers.adapters.kafka.config import KafkaConfig

T = TypeVar("T")
CLIENT_ID = "eventfleet-console"
_POLL_MS = 100


@dataclass(frozen=True, slots=True)
class Member:
    """One member of a consumer group, as the group's coordinator describes it."""

    member_id: str
    client_id: str
    host: str


@dataclass(frozen=True, slots=True)
class GroupState:
    """A consumer group: its coordinator's state (``Empty``, ``Stable``, ``Dead`` …) and its
    members (none: no consumer holds its partitions, so its offsets may be moved)."""

    group: str
    state: str
    members: tuple[Member, ...]


@dataclass(frozen=True, slots=True)
class Bounds:
    """One partition's first offset still held and its end (the next offset to be written)."""

    earliest: int
    end: int


class KafkaGroupAdmin:
    """Topics, groups and offsets for the console's actions, on one connection per call."""

    def __init__(self, kafka: KafkaConfig) -> None:
        self._kafka = kafka

    async def topics(self) -> list[str]:
        """Every topic on the brokers, sorted."""

        async def ask(admin: AIOKafkaAdminClient, _: AIOKafkaConsumer) -> list[str]:
            return sorted(str(t) for t in await admin.list_topics())

        return await self._bounded("did not list its topics", ask)

    async def partitions(self, topic: str) -> list[int]:
        """The partitions of ``topic`` (none: it does not exist)."""

        async def ask(admin: AIOKafkaAdminClient, _: AIOKafkaConsumer) -> list[int]:
            if topic not in set(await admin.list_topics()):
                return []
            described = await admin.describe_topics([topic])
            return sorted(int(p["partition"]) for d in described for p in d.get("partitions") or ())

        return await self._bounded(f"did not describe topic {topic}", ask)

    async def group(self, group: str) -> GroupState:
        """The group's state and members, as its coordinator says."""

        async def ask(admin: AIOKafkaAdminClient, _: AIOKafkaConsumer) -> GroupState:
            answers = await admin.describe_consumer_groups([group])
            for answer in answers:
                for found in answer.groups:
                    if str(found[1]) != group:
                        continue
                    if found[0]:
                        raise for_code(found[0])(f"describing group {group}")
                    members = tuple(Member(str(m[0]), str(m[1]), str(m[2])) for m in found[5])
                    return GroupState(group, str(found[2]), members)
            return GroupState(group, "Dead", ())

        return await self._bounded(f"did not describe group {group}", ask)

    async def committed(self, group: str, topic: str, partitions: list[int]) -> dict[int, int]:
        """The offsets ``group`` committed on ``topic``'s ``partitions`` (a partition it never
        committed is left out). Asked per partition: not every broker lists a group's every
        offset (Tansu closes the connection)."""
        wanted = [TopicPartition(topic, p) for p in partitions]

        async def ask(admin: AIOKafkaAdminClient, _: AIOKafkaConsumer) -> dict[int, int]:
            listed = await admin.list_consumer_group_offsets(group, partitions=wanted)
            return {tp.partition: meta.offset for tp, meta in listed.items() if meta.offset >= 0}

        return await self._bounded(f"did not say where group {group} stands on {topic}", ask)

    async def bounds(self, topic: str, partitions: list[int]) -> dict[int, Bounds]:
        """Each partition's first offset held and its end."""
        wanted = [TopicPartition(topic, p) for p in partitions]

        async def ask(_: AIOKafkaAdminClient, consumer: AIOKafkaConsumer) -> dict[int, Bounds]:
            firsts = await consumer.beginning_offsets(wanted)
            ends = await consumer.end_offsets(wanted)
            return {tp.partition: Bounds(firsts[tp], ends[tp]) for tp in wanted}

        return await self._bounded(f"did not give the offsets of {topic}", ask)

    async def at_time(self, topic: str, partitions: list[int], at_ms: int) -> dict[int, int]:
        """Each partition's first offset whose record's timestamp is at or after ``at_ms`` (its
        end when none is that late), found by reading records' timestamps: a binary search
        over the offsets held, as the broker's time index answers it (Tansu answers
        ListOffsets by time with the first offset, whatever the time)."""
        wanted = [TopicPartition(topic, p) for p in partitions]

        async def ask(_: AIOKafkaAdminClient, consumer: AIOKafkaConsumer) -> dict[int, int]:
            firsts = await consumer.beginning_offsets(wanted)
            ends = await consumer.end_offsets(wanted)
            consumer.assign(wanted)
            found: dict[int, int] = {}
            for tp in wanted:
                low, high = firsts[tp], ends[tp]  # the answer lies in [low, high]
                while low < high:
                    middle = (low + high) // 2
                    record = await _first_from(consumer, tp, middle, ends[tp])
                    if record is None or record[1] >= at_ms:
                        high = middle  # reading from ``middle`` starts at that record
                    else:
                        low = record[0] + 1
                found[tp.partition] = low
            return found

        return await self._bounded(f"did not let {topic} be read by time", ask)

    async def commit(self, group: str, topic: str, offsets: Mapping[int, int]) -> None:
        """Commit ``offsets`` (by partition of ``topic``) for ``group`` from a consumer that never
        joins it (manually assigned: its commit carries no generation, which the coordinator takes
        only while the group has no member)."""
        timeout_s = self._kafka.timeout_ms / 1000
        consumer = AIOKafkaConsumer(
            **self._kafka.client_kwargs(),
            client_id=CLIENT_ID,
            group_id=group,
            enable_auto_commit=False,
        )
        try:
            async with asyncio.timeout(timeout_s * 2):
                await consumer.start()
                chosen = {TopicPartition(topic, p): o for p, o in offsets.items()}
                consumer.assign(list(chosen))
                await consumer.commit(chosen)
        except (TimeoutError, KafkaError, OSError, KeyError) as e:
            brokers = BrokerClients(self._kafka, client_id=CLIENT_ID)
            raise brokers.unavailable(f"did not take the offsets of group {group}", e) from e
        finally:
            await close_quietly(consumer.stop, timeout_s=timeout_s, what=CLIENT_ID)

    async def _bounded(
        self, what: str, call: Callable[[AIOKafkaAdminClient, AIOKafkaConsumer], Awaitable[T]]
    ) -> T:
        brokers = BrokerClients(self._kafka, client_id=CLIENT_ID)
        try:
            async with asyncio.timeout(brokers.timeout_s * 2):
                admin, consumer = await brokers.open()
                return await call(admin, consumer)
        except (TimeoutError, KafkaError, OSError, KeyError) as e:
            # aiokafka also raises KeyError on a refused SCRAM login
            raise brokers.unavailable(what, e) from e
        finally:
            await brokers.stop()


async def _first_from(
    consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int, end: int
) -> tuple[int, int] | None:
    """The offset and timestamp of the first record at or after ``offset`` (None: none
    before ``end``)."""
    consumer.seek(tp, offset)
    while True:
        batches = await consumer.getmany(tp, timeout_ms=_POLL_MS, max_records=1)
        for record in batches.get(tp, ()):
            return record.offset, record.timestamp
        if await consumer.position(tp) >= end:  # control records move it, and hold nothing
            return None
