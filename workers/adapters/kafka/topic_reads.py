"""What the console reads of a topic besides its newest records: its settings and partition
offsets (the admin API), and one bounded range of its partitions, found by offset or by time
(``offsets_for_times``), so a filter or a tail reads its window and never the whole topic.

Every call is bounded by ``timeout_s``; Kafka's errors become StreamUnavailable, named.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from topics.errors import StreamUnavailable
from workers.adapters.kafka.admin import admin_client
from workers.adapters.kafka.closing import close_quietly
from workers.adapters.kafka.config import KafkaConfig
from workers.adapters.kafka.reader import record_of, topic_partitions
from workers.ports import Record

OPEN = 1 << 62
"""A window's top where no cursor bounds it: read to the high-water mark."""


@dataclass(frozen=True, slots=True)
class ConfigEntry:
    """One topic config as the broker describes it."""

    value: str | None
    default: bool
    """The broker's default (not set on the topic itself)."""
    sensitive: bool = False


@dataclass(frozen=True, slots=True)
class PartitionOffsets:
    """One partition: its replicas and the offsets it keeps."""

    partition: int
    leader: int | None
    replicas: int
    in_sync: int
    earliest: int
    end: int

    @property
    def records(self) -> int:
        """Offsets kept (end - earliest): the record count of a topic that is not compacted
        and has no transactions, an upper bound otherwise."""
        return max(0, self.end - self.earliest)


@dataclass(frozen=True, slots=True)
class TopicState:
    """A topic as the brokers describe it; ``exists`` False for a catalog topic not created."""

    name: str
    exists: bool
    partitions: Sequence[PartitionOffsets] = ()
    configs: Mapping[str, ConfigEntry] = field(default_factory=dict)

    @property
    def replication(self) -> int:
        return max((p.replicas for p in self.partitions), default=0)

    @property
    def records(self) -> int:
        return sum(p.records for p in self.partitions)

    def config(self, name: str) -> str | None:
        entry = self.configs.get(name)
        return None if entry is None else entry.value


@dataclass(frozen=True, slots=True)
class PartitionRange:
    """What one partition's part of a ``read_range`` covered: the window ``[low, high)`` asked
    (after the cursors and times), of which ``[start, high)`` was read."""

    partition: int
    earliest: int
    end: int
    low: int
    start: int
    high: int

    @property
    def cut(self) -> bool:
        """The bound stopped the read before the window's low end: older records remain."""
        return self.start > self.low


@dataclass(frozen=True, slots=True)
class RangeRead:
    """One bounded read: every record read, in offset order per partition, and each range."""

    records: Sequence[Record]
    ranges: Sequence[PartitionRange]

    @property
    def scanned(self) -> int:
        return len(self.records)


async def describe_topics(
    kafka: KafkaConfig, names: Sequence[str], *, timeout_s: float
) -> list[TopicState]:
    """Each named topic's partitions, replicas, configs and kept offsets, in ``names``' order."""
    async with admin_client(kafka) as admin:
        async with asyncio.timeout(timeout_s):
            existing = set(await admin.list_topics())
            present = [n for n in names if n in existing]
            described = await admin.describe_topics(present) if present else []
            configs = await _configs(admin, present)
    layout = {d["topic"]: d.get("partitions") or [] for d in described}
    tps = [TopicPartition(t, p["partition"]) for t in present for p in layout.get(t, [])]
    firsts, ends = await _offsets(kafka, tps, timeout_s=timeout_s) if tps else ({}, {})
    states = []
    for name in names:
        if name not in existing:
            states.append(TopicState(name, exists=False))
            continue
        parts = sorted(
            (
                PartitionOffsets(
                    p["partition"],
                    p.get("leader"),
                    len(p.get("replicas") or ()),
                    len(p.get("isr") or ()),
                    firsts.get(TopicPartition(name, p["partition"]), 0),
                    ends.get(TopicPartition(name, p["partition"]), 0),
                )
                for p in layout.get(name, [])
            ),
            key=lambda p: p.partition,
        )
        states.append(TopicState(name, True, parts, configs.get(name, {})))
    return states


async def _configs(
    admin: AIOKafkaAdminClient, topics: Sequence[str]
) -> dict[str, dict[str, ConfigEntry]]:
    if not topics:
        return {}
    responses = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, t) for t in topics]
    )
    found: dict[str, dict[str, ConfigEntry]] = {}
    for response in responses:
        for resource in response.resources:
            name, entries = resource[3], resource[4]
            # (name, value, read_only, is_default or config_source, is_sensitive, ...): a
            # config_source of 5 is the broker's default (DescribeConfigs v1 and later).
            found[name] = {
                e[0]: ConfigEntry(e[1], e[3] is True or e[3] == 5, bool(e[4])) for e in entries
            }
    return found


async def _offsets(
    kafka: KafkaConfig, tps: Sequence[TopicPartition], *, timeout_s: float
) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
    consumer = AIOKafkaConsumer(**kafka.client_kwargs(), enable_auto_commit=False)
    try:
        async with asyncio.timeout(timeout_s):
            await consumer.start()
            return await consumer.beginning_offsets(tps), await consumer.end_offsets(tps)
    except (TimeoutError, KafkaError, OSError) as e:
        raise StreamUnavailable(
            f"Kafka at {kafka.describe()} did not give the offsets of "
            f"{', '.join(sorted({tp.topic for tp in tps}))} in time ({type(e).__name__})."
        ) from e
    finally:
        await close_quietly(consumer.stop, timeout_s=5, what="topic offsets")


async def read_range(
    kafka: KafkaConfig,
    topic: str,
    *,
    per_partition: int | None = None,
    budget: int | None = None,
    partition: int | None = None,
    after: Mapping[int, int] | None = None,
    before: Mapping[int, int] | None = None,
    since_ms: int | None = None,
    until_ms: int | None = None,
    timeout_s: float = 10.0,
) -> RangeRead:
    """The newest ``per_partition`` records (or a share of ``budget``, which bounds the read
    of all) of each partition's window (or only ``partition``'s): from the first kept offset,
    ``after[p]`` and the first record stamped at or after ``since_ms``, up to the end, ``before[p]``
    and the first record stamped after
    ``until_ms``. Times are found with ``offsets_for_times``, so only the window is read.
    No range for a partition the topic has not; StreamUnavailable when Kafka does not answer
    within ``timeout_s``."""
    if (per_partition or budget or 0) < 1:
        raise ValueError(f"read_range needs per_partition or budget >= 1, not {per_partition}")
    consumer = AIOKafkaConsumer(
        **kafka.client_kwargs(), enable_auto_commit=False, fetch_max_wait_ms=50
    )
    try:
        async with asyncio.timeout(timeout_s):
            await consumer.start()
            tps = await topic_partitions(consumer, topic, partition=partition)
            if not tps:
                return RangeRead((), ())
            consumer.assign(tps)
            firsts = await consumer.beginning_offsets(tps)
            ends = await consumer.end_offsets(tps)
            lows = {tp: max(firsts[tp], (after or {}).get(tp.partition, 0)) for tp in tps}
            # The embedded broker's ListOffsets answer (end_offsets) can lag the records: a
            # cursor is taken as given, and without one the top is the high-water mark the
            # fetches report.
            cursors = before or {}
            hard = {tp: cursors.get(tp.partition, OPEN) for tp in tps}
            highs = {tp: cursors.get(tp.partition, ends[tp]) for tp in tps}
            if since_ms is not None:
                found = await _times(consumer, tps, since_ms)
                for tp in tps:
                    lows[tp] = max(lows[tp], found.get(tp, ends[tp]))
            soft = dict(highs)
            if until_ms is not None:
                found = await _times(consumer, tps, until_ms + 1)
                for tp in tps:
                    soft[tp] = min(highs[tp], found.get(tp, highs[tp]))
            share = per_partition or max(1, (budget or 0) // len(tps))
            window = _Window(firsts, ends, lows, soft, hard, until_ms)
            return await _read(consumer, tps, window, share)
    except (TimeoutError, KafkaError, OSError) as e:
        raise StreamUnavailable(
            f"Kafka at {kafka.describe()} did not let a range of {topic} be read in time "
            f"({type(e).__name__})."
        ) from e
    finally:
        await close_quietly(consumer.stop, timeout_s=5, what="topic range reader")


async def _times(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], at_ms: int
) -> dict[TopicPartition, int]:
    """Where each partition's records stamped at or after ``at_ms`` begin, as a seek hint: a
    broker may answer a batch's first offset (Tansu does), so records before it are filtered
    by their own time. A partition with none is left out (Tansu answers offset 0 and
    timestamp -1 for it)."""
    found = await consumer.offsets_for_times(dict.fromkeys(tps, at_ms))
    return {tp: at.offset for tp, at in found.items() if at is not None and at.timestamp >= 0}


@dataclass(frozen=True, slots=True)
class _Window:
    """Per partition: the first kept offset and the end (raised to the high-water mark the
    fetches report); the window ``[lows, hard)`` (``OPEN``: to the high-water mark), whose
    newest records end at ``soft`` (the end asked, or the time bound's hint), read on past it
    to the top, or while records are still stamped at or before ``until_ms``."""

    firsts: dict[TopicPartition, int]
    ends: dict[TopicPartition, int]
    lows: dict[TopicPartition, int]
    soft: dict[TopicPartition, int]
    hard: dict[TopicPartition, int]
    until_ms: int | None


async def _read(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], w: _Window, share: int
) -> RangeRead:
    """Each partition sought to ``max(low, soft - share)`` and read to its window's top."""
    starts = {tp: max(w.lows[tp], w.soft[tp] - share) for tp in tps}
    tops = dict(w.soft)
    pending = [tp for tp in tps if starts[tp] < w.hard[tp]]
    for tp in pending:
        consumer.seek(tp, starts[tp])
    got: dict[TopicPartition, list[Record]] = {tp: [] for tp in tps}
    while pending:
        batches = await consumer.getmany(*pending, timeout_ms=200)
        for tp, batch in batches.items():
            for r in batch:
                if r.offset >= w.hard[tp] or tp not in pending:
                    continue
                past = r.offset >= w.soft[tp] and w.until_ms is not None
                if past and (r.timestamp > w.until_ms or r.offset >= w.soft[tp] + share):
                    pending.remove(tp)  # past the time bound (or a hint a share too low): the top
                    continue
                got[tp].append(record_of(tp, r))
                tops[tp] = max(tops[tp], r.offset + 1)
        for tp in list(pending):
            position = await consumer.position(tp)
            highwater = consumer.highwater(tp)
            # A window past the records (an end the embedded broker reported ahead, records
            # compacted away) ends at the high-water mark the fetches report.
            if position >= w.hard[tp] or (highwater is not None and position >= highwater):
                pending.remove(tp)
            if highwater is not None:
                w.ends[tp] = max(w.ends[tp], highwater)
    for tp in tps:
        # A cursor past the records (typed by hand) continues from the end found.
        starts[tp], tops[tp] = min(starts[tp], w.ends[tp]), min(tops[tp], w.ends[tp])
        if len(got[tp]) > share:  # the end found lagged the records: the newest share is kept
            got[tp] = got[tp][-share:]
            starts[tp] = got[tp][0].offset
    ranges = [
        PartitionRange(
            tp.partition, w.firsts[tp], w.ends[tp], w.lows[tp], min(starts[tp], tops[tp]), tops[tp]
        )
        for tp in tps
    ]
    return RangeRead([r for tp in tps for r in got[tp]], ranges)
