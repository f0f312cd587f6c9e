"""What topics already hold, read back (``WrittenLog``): how the forwarder learns which copies it,
or the previous owner of its partitions, already produced before it produces again.

One group-less consumer, connected on first use and kept open; a call that fails drops it, so
the next call connects afresh. Every call is bounded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from topics.errors import StreamUnavailable
from workers.adapters.kafka.closing import close_quietly
from workers.adapters.kafka.config import KafkaConfig
from workers.adapters.kafka.reader import at_end, record_of
from workers.ports import Record

log = logging.getLogger(__name__)

_POLL_MS = 100
T = TypeVar("T")


class KafkaWrittenLog:
    """``WrittenLog`` on Kafka: timestamps found by offset, tails found by time (ListOffsets)."""

    def __init__(self, kafka: KafkaConfig, *, fetch_max_wait_ms: int = 50) -> None:
        self._kafka = kafka
        self._timeout_s = kafka.timeout_ms / 1000
        self._fetch_max_wait_ms = fetch_max_wait_ms
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    async def time_at(self, topic: str, partition: int, offset: int) -> int | None:
        tp = TopicPartition(topic, partition)

        async def first(step: Callable[[], None]) -> int | None:
            consumer = await self._client()
            step()  # connected: the bound counts from here
            consumer.assign([tp])
            consumer.seek(tp, offset)
            while True:
                batches = await consumer.getmany(tp, timeout_ms=_POLL_MS, max_records=1)
                for record in batches.get(tp, ()):
                    if record.offset >= offset:
                        return int(record.timestamp)
                if await at_end(consumer, tp):
                    return None  # nothing at or past ``offset`` yet

        return await self._bounded(f"did not give the time of {topic}/{partition}@{offset}", first)

    async def since(self, topic: str, since_ms: int) -> list[Record]:
        async def read(step: Callable[[], None]) -> list[Record]:
            consumer = await self._client()
            step()
            # The cluster as it is now (``partitions_for_topic`` keeps what an earlier read saw:
            # a topic missing then stays missing).
            cluster = await consumer._client.fetch_all_metadata()
            partitions = cluster.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in sorted(partitions)]
            if not tps:
                return []  # no such topic yet: nothing was written to it
            consumer.assign(tps)
            step()
            found = await consumer.offsets_for_times(dict.fromkeys(tps, max(0, since_ms)))
            step()
            ends = await consumer.end_offsets(tps)
            step()
            pending = []
            for tp in tps:
                at = found.get(tp)
                if at is not None:
                    consumer.seek(tp, at.offset)
                    pending.append(tp)
            records: list[Record] = []
            while pending:
                batches = await consumer.getmany(*pending, timeout_ms=_POLL_MS)
                if batches:
                    step()  # progress: a long tail is read to its end, a stall is not waited out
                for tp, batch in batches.items():
                    records += [record_of(tp, r) for r in batch if r.timestamp >= since_ms]
                for tp in list(pending):
                    # The embedded broker's ListOffsets answer can lag the records: the end is
                    # also the high-water mark the fetches report.
                    highwater = consumer.highwater(tp)
                    if highwater is None:
                        continue  # not fetched yet
                    if await consumer.position(tp) >= max(ends[tp], highwater):
                        pending.remove(tp)
            return records

        return await self._bounded(f"did not let {topic} be read by time", read)

    async def stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is None:
            return
        await close_quietly(consumer.stop, timeout_s=self._timeout_s, what="written log")

    async def _client(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                **self._kafka.client_kwargs(),
                client_id="eventfleet-written",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                fetch_max_wait_ms=self._fetch_max_wait_ms,
            )
            self._consumer = consumer
            await consumer.start()
        return self._consumer

    async def _bounded(self, what: str, call: Callable[[Callable[[], None]], Awaitable[T]]) -> T:
        """One call at a time (each reassigns the consumer), bounded, driver errors translated
        once; a failed call drops the consumer, so the next one connects afresh. The bound is
        two timeouts, from the start or from the last time ``call`` said it made progress (the
        function it is given: after each answered round trip and each fetched batch), so a
        slow but answering broker is read to the end rather than reconnected to on every try,
        and one that stops answering fails the call within the bound."""
        loop = asyncio.get_running_loop()
        async with self._lock:
            try:
                async with asyncio.timeout(self._timeout_s * 2) as bound:

                    def step() -> None:
                        bound.reschedule(loop.time() + self._timeout_s * 2)

                    return await call(step)
            except (TimeoutError, KafkaError, OSError, KeyError) as e:
                # aiokafka also raises KeyError on a refused SCRAM login
                await self.stop()
                log.debug("written log: Kafka %s: %r", what, e)
                raise StreamUnavailable(
                    f"Kafka at {self._kafka.describe()} {what} ({type(e).__name__})."
                ) from e
