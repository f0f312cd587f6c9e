"""The log's word on a produce that was never answered: did a record of the event land?

A produce answered ``outcome_unknown`` may still be written while the producer holds it
(aiokafka sends a batch, and may send it once more, until its request timeout has run out
since the batch was made; the answer came 1.5 timeouts after the send), and a request that
reached a stalled broker is applied whenever the broker runs again, however long it stalled.
So absence is read in two steps: the partition is read to the end the broker gives now
(the broker answers: it runs), then, after a grace in which a running broker takes every
request it had already received, to the end a new consumer's first fetch gives. A record of
the event that is not in that end was never taken and never will be: the producer stopped
sending it before the first read, and the broker had no copy of it left to apply.

One read serves every event asked about meanwhile (a *sweep*): an event whose outcome is asked
while a sweep of its topic is still connecting joins it (its bound passed before it was asked,
so before that sweep takes its first ends), and the sweep reads each partition it needs once,
with two consumers in all however many events wait, where each event had three of its own. That
is the work a starved CPU stretches (consumers connecting, partitions read), so the time from
the bound to the answer no longer grows with the number of unknown outcomes asked at once.
An event asked about after the ends were taken waits for the next sweep: an answer is only ever
read from ends taken after its question (``LogProbe.find``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from topics.errors import StreamUnavailable
from workers.adapters.kafka.closing import close_quietly
from workers.adapters.kafka.config import KafkaConfig
from workers.adapters.kafka.reader import reading_consumer
from workers.adapters.partitions import partition_for
from workers.ports import Delivery

log = logging.getLogger(__name__)

SKEW = timedelta(minutes=5)
"""How far another process's clock (the record's timestamp is its producer's) may be behind."""


@dataclass
class Sweep:
    """One read of a topic for every event waiting on it: event id -> (key, stamped since)."""

    topic: str
    wanted: dict[bytes, tuple[bytes, datetime]] = field(default_factory=dict)
    answers: asyncio.Future[dict[bytes, Delivery]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class KafkaLogProbe:
    """Reads the partitions of the events asked about (``LogProbe``), in sweeps, no group."""

    def __init__(self, kafka: KafkaConfig, *, grace_s: float | None = None) -> None:
        self.sweeps = 0
        """Reads of the log made so far (each answers every event that joined it)."""
        self._kafka = kafka
        self._timeout_s = kafka.timeout_ms / 1000
        self._grace_s = max(1.0, self._timeout_s) if grace_s is None else grace_s
        self._budget_s = self._grace_s + 4 * self._timeout_s + 2  # a frozen broker: unknown
        self._joinable: dict[str, Sweep] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def delivery_bound_s(self) -> float | None:
        """The answer came 1.5 timeouts after the send; a batch made then is sent at most
        until its timeout ran out (one behind another partition's request waits for that one:
        a timeout more), and its last request is dropped a timeout after it was written:
        3 timeouts after the answer, and a second for the reconnections between."""
        if self._kafka.idempotence:
            return None  # aiokafka never expires an idempotent batch: it retries until acked
        return 3 * self._timeout_s + 1.0

    async def find(
        self, topic: str, key: bytes, event_id: str, *, since: datetime
    ) -> Delivery | None:
        wanted = event_id.encode()
        sweep = self._joinable.get(topic) or self._start(topic)
        sweep.wanted[wanted] = (key, since)
        try:
            async with asyncio.timeout(self._budget_s):
                answers = await asyncio.shield(sweep.answers)  # a query that leaves ends no sweep
        except TimeoutError as e:
            raise StreamUnavailable(
                f"Kafka did not let {topic} be read for event {event_id} within "
                f"{self._budget_s:g} s; the outcome stays unknown until it does."
            ) from e
        return answers.get(wanted)

    def _start(self, topic: str) -> Sweep:
        self.sweeps += 1
        sweep = self._joinable[topic] = Sweep(topic)
        task = asyncio.create_task(self._run(sweep))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return sweep

    async def _run(self, sweep: Sweep) -> None:
        """The sweep, within a query's budget: its answers, or StreamUnavailable for each."""
        try:
            async with asyncio.timeout(self._budget_s):
                answers = await self._read(sweep)
        except (TimeoutError, KafkaError, OSError, StreamUnavailable) as e:
            sweep.answers.set_exception(
                StreamUnavailable(
                    f"Kafka did not let {sweep.topic} be read: {e!r}; the outcome stays unknown "
                    "until it does."
                )
            )
            sweep.answers.exception()  # retrieved here: its waiters may have left
        else:
            sweep.answers.set_result(answers)
        finally:
            self._close_door(sweep)

    async def _read(self, sweep: Sweep) -> dict[bytes, Delivery]:
        began = time.monotonic()
        consumer = reading_consumer(self._kafka)
        try:
            await consumer.start()
            self._close_door(sweep)
            partition_of = await self._partitions(consumer, sweep)
            starts = await self._starts(consumer, sweep, partition_of)
            found, reached = await self._scan(consumer, sweep.topic, starts, partition_of)
        finally:
            await _stop(consumer)
        first_s, second_s = time.monotonic() - began, 0.0
        missing = set(sweep.wanted) - found.keys()
        if missing:
            await asyncio.sleep(self._grace_s)  # the broker's own time to take what it holds
            waiting = {partition_of[w] for w in missing}
            again = {p: offset for p, offset in reached.items() if p in waiting}
            second = time.monotonic()
            consumer = reading_consumer(self._kafka)
            try:
                await consumer.start()
                wanted_again = {w: partition_of[w] for w in missing}
                more, _ = await self._scan(consumer, sweep.topic, again, wanted_again)
            finally:
                await _stop(consumer)
            found |= more
            second_s = time.monotonic() - second
        log.info(
            "log probe: %d events on %s: read in %.2f s, after the %.2f s grace in %.2f s: "
            "%d found",
            len(sweep.wanted),
            sweep.topic,
            first_s,
            self._grace_s if missing else 0,
            second_s,
            len(found),
        )
        return found

    def _close_door(self, sweep: Sweep) -> None:
        """Once its consumer is connected the sweep takes its ends: an event asked about from
        then on is the next sweep's (a joiner's bound passed before the ends are taken)."""
        if self._joinable.get(sweep.topic) is sweep:
            del self._joinable[sweep.topic]

    async def _partitions(self, consumer: AIOKafkaConsumer, sweep: Sweep) -> dict[bytes, int]:
        """Each wanted event's partition: its key's."""
        partitions = consumer.partitions_for_topic(sweep.topic)
        if not partitions:
            await consumer.topics()
            partitions = consumer.partitions_for_topic(sweep.topic)
        if not partitions:
            raise StreamUnavailable(f"Kafka does not know the topic {sweep.topic}.")
        count = len(partitions)
        return {wanted: partition_for(key, count) for wanted, (key, _) in sweep.wanted.items()}

    async def _starts(
        self, consumer: AIOKafkaConsumer, sweep: Sweep, partition_of: dict[bytes, int]
    ) -> dict[int, int]:
        """The first offset to read per partition: the first record stamped at or after the
        earliest ``since`` of its events less the clocks' skew, or the log's start if the
        broker cannot say."""
        since: dict[int, datetime] = {}
        for wanted, (_, stamped) in sweep.wanted.items():
            p = partition_of[wanted]
            since[p] = min(stamped, since.get(p, stamped))
        tps = {p: TopicPartition(sweep.topic, p) for p in since}
        # The ends first: a record landing after them is at or past them, whenever it lands.
        ends = await consumer.end_offsets(list(tps.values()))
        times = {tps[p]: int((at - SKEW).timestamp() * 1000) for p, at in since.items()}
        try:
            found = await consumer.offsets_for_times(times)
        except KafkaError as e:  # a broker without timestamp lookups: from the start
            log.info("offsets by time on %s not answered (%r): read from the start", sweep.topic, e)
            beginnings = await consumer.beginning_offsets(list(tps.values()))
            return {p: beginnings[tp] for p, tp in tps.items()}
        starts = {}
        for p, tp in tps.items():
            at = found.get(tp)
            # Nothing stamped since (Tansu answers offset 0 and timestamp -1): read from the end
            # taken before (Tansu's lags behind: more read, never less).
            starts[p] = ends[tp] if at is None or at.timestamp < 0 else at.offset
        return starts

    async def _scan(
        self,
        consumer: AIOKafkaConsumer,
        topic: str,
        starts: dict[int, int],
        wanted: dict[bytes, int],
    ) -> tuple[dict[bytes, Delivery], dict[int, int]]:
        """Read each partition from its start to the end this consumer's fetches report: the
        deliveries of ``wanted`` (event id -> its key's partition; a copy on another partition
        is not its key's) found, and the offset reached per partition."""
        tps = {p: TopicPartition(topic, p) for p in starts}
        consumer.assign(list(tps.values()))
        for p, tp in tps.items():
            consumer.seek(tp, starts[p])
        found: dict[bytes, Delivery] = {}
        reached: dict[int, int] = {}
        while len(reached) < len(tps):
            # Short waits: a partition with nothing after its start returns no records, and
            # the fetch that says so (its high watermark) is what ends the read, not a timer.
            batches = await consumer.getmany(*tps.values(), timeout_ms=25)
            for tp, records in batches.items():
                for record in records:
                    for name, value in record.headers or ():
                        if name == "event_id" and wanted.get(bytes(value)) == tp.partition:
                            found[bytes(value)] = Delivery(topic, tp.partition, record.offset)
            for p, tp in tps.items():
                highwater = consumer.highwater(tp)
                if p not in reached and highwater is not None:
                    position = await consumer.position(tp)
                    if position >= highwater:
                        reached[p] = position
        return found, reached


async def _stop(consumer: AIOKafkaConsumer) -> None:
    await close_quietly(consumer.stop, timeout_s=5, what="log probe")
