"""Bounded reads of a topic from positions (``TopicPages``): the global read's pages, on a few
group-less consumers a process keeps and reuses (one page at a time each)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError, OffsetOutOfRangeError

from topics.errors import PositionOutdated, StreamUnavailable
from workers.adapters.kafka.closing import close_quietly
from workers.adapters.kafka.config import KafkaConfig
from workers.adapters.kafka.reader import record_of, seek_after, topic_partitions
from workers.ports import Record, TopicSlice

FETCH_WAIT_MS = 10
"""How long a fetch waits when no partition has more: what a page read at the end costs."""
METADATA_MAX_AGE_MS = 30_000
"""A kept reader learns a topic's new partition count within this (aiokafka's default: 5 min):
until then its positions count the old one, and are refused as outdated once it knows."""


class KafkaPages:
    """``TopicPages`` on at most ``readers`` consumers, made on first use and kept: a page costs
    its fetches, never a connection. A read past its bound (``timeout_s``) or over a broken
    connection is StreamUnavailable, and its consumer is closed rather than reused."""

    def __init__(self, kafka: KafkaConfig, *, readers: int = 4, timeout_s: float = 10.0) -> None:
        self._kafka = kafka
        self._timeout_s = timeout_s
        self._slots = asyncio.Semaphore(readers)
        self._idle: list[AIOKafkaConsumer] = []

    async def read(self, topic: str, *, after: Mapping[int, int], limit: int) -> TopicSlice:
        if limit < 1:
            raise ValueError(f"a read of {topic} takes at least one record, not {limit}")
        async with self._slots:
            consumer = self._idle.pop() if self._idle else None
            reusable = False
            try:
                async with asyncio.timeout(self._timeout_s):
                    if consumer is None:
                        consumer = await self._started()
                    found = await _read(consumer, topic, after, limit)
                reusable = True
                return found
            except PositionOutdated:
                reusable = True
                raise
            except (TimeoutError, KafkaError, OSError) as e:
                raise StreamUnavailable(f"Kafka did not let {topic} be read: {e!r}") from e
            finally:
                if consumer is not None:
                    if reusable:
                        self._idle.append(consumer)
                    else:
                        await _stop(consumer)

    async def _started(self) -> AIOKafkaConsumer:
        # "none": an offset the partition does not hold is an error to report, never a silent
        # jump to the beginning or the end.
        consumer = AIOKafkaConsumer(
            **self._kafka.client_kwargs(),
            enable_auto_commit=False,
            auto_offset_reset="none",
            fetch_max_wait_ms=FETCH_WAIT_MS,
            metadata_max_age_ms=METADATA_MAX_AGE_MS,
        )
        try:
            await consumer.start()
        except BaseException:
            await _stop(consumer)
            raise
        return consumer

    async def stop(self) -> None:
        idle, self._idle = self._idle, []
        for consumer in idle:
            await _stop(consumer)


async def _read(
    consumer: AIOKafkaConsumer, topic: str, after: Mapping[int, int], limit: int
) -> TopicSlice:
    tps = await _assigned(consumer, topic, after)
    starts = {tp.partition: await consumer.position(tp) for tp in tps}
    runs: dict[int, list[Record]] = {tp.partition: [] for tp in tps}
    ends: dict[int, int] = {}
    pending, taken = list(tps), 0
    while pending and taken < limit:
        try:
            batches = await consumer.getmany(*pending, timeout_ms=200, max_records=limit - taken)
        except OffsetOutOfRangeError as e:
            raise await _outside(consumer, topic, starts, tps) from e
        for tp, batch in batches.items():
            runs[tp.partition] += [record_of(tp, r) for r in batch]
            taken += len(batch)
        for tp in list(pending):
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue  # not fetched yet: its end is not known
            ends[tp.partition] = highwater
            if await consumer.position(tp) >= highwater:
                pending.remove(tp)
    fetched = set(ends)  # ends the fetches reported (a ListOffsets answer can lag)
    unknown = [tp for tp in tps if tp.partition not in ends]  # cut short before its fetch
    if unknown:
        for tp, end in (await consumer.end_offsets(unknown)).items():
            ends[tp.partition] = end
    for tp in tps:
        run = runs[tp.partition]
        if run:  # never below what was read (the embedded broker's ListOffsets lags)
            ends[tp.partition] = max(ends[tp.partition], run[-1].offset + 1)
        elif tp.partition in fetched and starts[tp.partition] > ends[tp.partition]:
            # a broker that answers a fetch past the end with nothing (the embedded one)
            raise await _outside(consumer, topic, starts, tps)
    return TopicSlice(len(tps), starts, runs, ends)


async def _assigned(
    consumer: AIOKafkaConsumer, topic: str, after: Mapping[int, int]
) -> list[TopicPartition]:
    """Every partition of ``topic`` assigned anew (nothing fetched for an earlier read kept),
    each at its position in ``after`` or at its first kept offset."""
    tps = await topic_partitions(consumer, topic)
    if not tps:
        raise StreamUnavailable(
            f"topic {topic} does not exist; create the fleet's topics (eventfleet topics ensure)."
        )
    consumer.assign(tps)
    await seek_after(consumer, tps, after)
    return tps


async def _outside(
    consumer: AIOKafkaConsumer, topic: str, starts: Mapping[int, int], tps: list[TopicPartition]
) -> PositionOutdated:
    """Which asked offset the log does not hold, and what it holds there."""
    firsts = await consumer.beginning_offsets(tps)
    lasts = await consumer.end_offsets(tps)
    for tp in tps:
        first, asked = firsts[tp], starts[tp.partition]
        end = max(lasts[tp], consumer.highwater(tp) or 0)  # the embedded broker's answer lags
        if not first <= asked <= end:
            return PositionOutdated(
                f"the position names offset {asked} of {topic} partition {tp.partition}, which "
                f"holds offsets {first} to {end} now (records before it deleted, or the topic "
                "recreated); read again from the beginning (no after)."
            )
    return PositionOutdated(
        f"the position names offsets {topic} does not hold; read again from the beginning."
    )


async def _stop(consumer: AIOKafkaConsumer) -> None:
    await close_quietly(consumer.stop, timeout_s=5, what="page reader")
