"""One batch loop for every role: take a fetched batch, hand it to the role, retry, ack.

Each agent takes whole fetched batches (``workers.stream.fetched``: no Faust stream per
record), hands the records to its role's logic, retries while a dependency is unavailable,
and acks only the records its offset ledger releases once they are decided. An
error no retry can fix stops the process with the batch unacked (``Fleet.fatal``), so it is
redelivered to a healthy worker instead of silently stalling the partition (faust#175). A
CancelledError nobody asked for, raised by a library, is such an error (``a_failure``); so is
any error of the task that closes offset gaps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

from faust.types import TP, Message, StreamT

from topics.errors import StreamUnavailable, Unavailable
from workers.ports import Record
from workers.roles.retry import until_done
from workers.runtime.failures import a_failure
from workers.runtime.fleet import Fleet
from workers.stream.faust_app import fleet_consumer
from workers.stream.faust_types import Partitions, on_rebalance
from workers.stream.fetched import BatchTopic, FetchedBatches, ack, fetched
from workers.stream.gaps import GapCloser
from workers.stream.offsets import OffsetLedger

log = logging.getLogger(__name__)

MAX_UNACKED_BATCHES = 16
"""Batches whose background work (snapshot rebuilds) may still be running before the agent waits."""
GAP_RETRY_S = 0.25
"""How soon an agent looks at a gap again that it could not close (a redelivery on its way,
or Kafka not answering)."""
TAIL_IDLE_S = 1.0
"""How long an agent is idle before it checks that nothing past what it received was lost."""


@dataclass(frozen=True, slots=True)
class Acks:
    """Ack exactly these records; the others of the batch stay unacked until a later ``Acks``."""

    records: Sequence[Record]


Handle = Callable[[Sequence[Record]], Awaitable["Awaitable[object] | Acks | None"]]
"""A role's batch logic. It returns None (ack the batch), background work that must finish
before the batch acks, or ``Acks`` (ack only the records it decided)."""
Tick = Callable[[], Awaitable[Sequence[Record]]]
"""Called on a timer between batches; returns records decided meanwhile (to ack)."""


@dataclass(frozen=True, slots=True)
class Ticks:
    """``tick`` runs every ``every_s`` while ``when()`` says it may have work."""

    tick: Tick
    every_s: float = 0.05
    when: Callable[[], bool] = lambda: True


def to_record(message: Message) -> Record:
    """A fetched Faust ``Message`` as the roles see it (a null value, which the fleet never
    writes, as empty bytes: the role's decoder refuses it like any other bad record)."""
    raw = message.headers or ()
    headers = tuple(raw.items()) if isinstance(raw, Mapping) else raw
    value = b"" if message.value is None else message.value
    # Positionally, and aiokafka's header pairs as they are: built once per record fetched.
    return Record(message.topic, message.partition, message.offset, message.key, value, headers)


def batch_agent(
    fleet: Fleet,
    *,
    name: str,
    role: str,
    topic: str,
    handle: Handle,
    ticks: Ticks | None = None,
) -> OffsetLedger[Message]:
    """Declare agent ``name`` on ``topic``: every batch through ``handle``, acked after it;
    returns the agent's offset ledger (``ticks``: a timer's work between batches).

    Whatever the mode, records are acked through one ``OffsetLedger``: only a partition's
    prefix of decided records is acked, so no commit (periodic, rebalance, drain, shutdown)
    ever passes a record still waiting, retried, or in background work.
    """
    loop = BatchLoop(fleet, name=name, role=role, topic=topic, handle=handle, ticks=ticks)
    app = fleet.app
    on_rebalance(app, revoked=loop.revoked, assigned=loop.assigned)
    channel = BatchTopic(app, topics=[topic], value_serializer="raw", key_serializer="raw")
    app.agent(channel, name=name)(loop.run)
    return loop.ledger


class BatchLoop:
    """One agent's loop and the tasks beside it (gap closing, ticks), over its offset ledger."""

    def __init__(
        self, fleet: Fleet, *, name: str, role: str, topic: str, handle: Handle, ticks: Ticks | None
    ) -> None:
        self.fleet, self.name, self.role, self.topic = fleet, name, role, topic
        self.handle, self.ticks = handle, ticks
        self.unacked = asyncio.Semaphore(MAX_UNACKED_BATCHES)
        # Faust messages, held until they may be acked
        self.ledger: OffsetLedger[Message] = OffsetLedger()
        fleet.ledgers[name] = self.ledger
        self.activity = _Activity()
        self.gaps = GapCloser(
            positions=fleet.positions,
            consumer=_AgentConsumer(fleet, topic, self.activity),
            group=fleet.app.conf.id,
            topic=topic,
            role=role,
            metrics=fleet.runtime.metrics,
        )
        self.gap_seen = asyncio.Event()
        self.batches: FetchedBatches | None = None
        """Where the agent's fetched records wait (set when it runs)."""

    def release(self) -> None:
        ack(self.fleet.app.consumer, self.ledger.release())
        if self.ledger.gaps():
            self.gap_seen.set()

    def settle(self, records: Sequence[Record]) -> None:
        """Decide ``records`` and ack what that releases; with nothing fetched waiting behind
        them, the agent has caught up and asks for the commit now (``workers.stream.commits``)."""
        for record in records:
            self.ledger.decide(record.partition, record.offset)
        self.release()
        if records and self.batches is not None and not self.batches.waiting:
            self.fleet.commits.request()

    async def run(self, stream: StreamT[object]) -> None:
        """The agent: batch after batch until Faust ends its stream."""
        settings = self.fleet.runtime.settings
        within_s = settings.batch_within_ms / 1000
        self.batches = batches = fetched(stream)
        ticker = asyncio.ensure_future(self._ticking()) if self.ticks is not None else None
        closer = asyncio.ensure_future(self._closing())
        try:
            while True:
                try:
                    batch = await batches.take(settings.batch_size, within_s)
                except StopAsyncIteration:  # Faust stops the agent: its stream ends
                    return
                records = self._take(batch)
                if records:
                    await self._handle(records)
        finally:
            closer.cancel()
            if ticker is not None:
                ticker.cancel()

    def _take(self, batch: Sequence[Message]) -> list[Record]:
        """The batch's records new to the ledger; one decided long ago is acked again."""
        records = []
        for message in batch:
            record = to_record(message)
            taken = self.ledger.take(record.partition, record.offset, message)
            if taken == "new":
                records.append(record)
            elif taken == "done":  # delivered again after a seek: decided long ago
                ack(self.fleet.app.consumer, (message,))
        if self.ledger.gaps():
            self.gap_seen.set()  # closed beside the batch: only its acks wait for it
        return records

    async def _handle(self, records: list[Record]) -> None:
        fleet, role = self.fleet, self.role
        later: Awaitable[object] | Acks | None = None
        try:
            async with fleet.batch(role), self.activity:
                later = await until_done(
                    partial(self.handle, records), role=role, metrics=fleet.runtime.metrics
                )
        except BaseException as e:
            self._stop_for(e)
            await asyncio.Future()  # unacked: parked until the draining app cancels us
        if isinstance(later, Acks):
            self.settle(later.records)
        elif later is None:
            self.settle(records)
        else:
            await self.unacked.acquire()
            fleet.spawn(self._settle_when_done(records, later))

    def _stop_for(self, error: BaseException) -> None:
        """Stop the process, the batch unacked, when ``error`` is the work failing
        (``a_failure``); raise it again when this task is being stopped."""
        if not a_failure(error):
            raise error
        self.fleet.fatal(self.name, error)

    async def _settle_when_done(self, records: Sequence[Record], work: Awaitable[object]) -> None:
        try:
            await work
            self.settle(records)
        except BaseException as e:  # background work no retry can fix: stop, batch unacked
            self._stop_for(e)
        finally:
            self.unacked.release()

    async def _closing(self) -> None:
        """Close the ledger's gaps as they appear (what lies past a gap waits for it) and, while
        the agent is idle after a rebalance, check that no record past what it received was
        lost."""
        app, ledger, gaps = self.fleet.app, self.ledger, self.gaps
        tail_checked = -1
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(TAIL_IDLE_S):
                    await self.gap_seen.wait()
            self.gap_seen.clear()
            try:
                left = await gaps.close(ledger)
                generation = app.rebalance_generation
                if (
                    tail_checked != generation
                    and self.activity.idle_for(TAIL_IDLE_S)
                    and app.settled_for(TAIL_IDLE_S)
                    and not await gaps.check_tail(ledger)
                ):
                    tail_checked = generation  # once per rebalance: it drops records only then
            except Unavailable as e:
                log.warning("%s: a gap in the offsets stays open for now: %s", self.name, e)
                left = 1
            except BaseException as e:  # gaps no longer closed: the partition would stall
                self._stop_for(e)
                return
            self.release()
            if left:
                await asyncio.sleep(GAP_RETRY_S)
                self.gap_seen.set()

    async def _ticking(self) -> None:
        ticks, fleet, role = self.ticks, self.fleet, self.role
        assert ticks is not None
        while True:
            await asyncio.sleep(ticks.every_s)
            if not ticks.when():
                continue
            try:
                async with fleet.batch(role):
                    decided = await until_done(ticks.tick, role=role, metrics=fleet.runtime.metrics)
            except BaseException as e:
                self._stop_for(e)
                return
            self.settle(decided)

    async def revoked(self, sender: object, revoked: Partitions = None, **kwargs: object) -> None:
        # The partition's next owner reads these records again from the last commit.
        partitions = {tp.partition for tp in revoked or () if tp.topic == self.topic}
        self.ledger.revoke(partitions)
        self.gaps.forget(partitions)

    async def assigned(self, sender: object, assigned: Partitions = None, **kwargs: object) -> None:
        owned = {tp.partition for tp in assigned or () if tp.topic == self.topic}
        stale = self.ledger.partitions() - owned  # records buffered before the rebalance
        self.ledger.revoke(stale)
        self.gaps.forget(stale)
        self.ledger.expect(owned)  # their starts are read at once: a first fetch may be lost too
        self.gap_seen.set()


class _Activity:
    """``async with activity``: a batch is being handled; ``idle_for`` says how long none was."""

    def __init__(self) -> None:
        self._busy = 0
        self._since = time.monotonic()

    async def __aenter__(self) -> None:
        self._busy += 1

    async def __aexit__(self, *exc: object) -> None:
        self._busy -= 1
        self._since = time.monotonic()

    def idle_for(self, seconds: float) -> bool:
        return self._busy == 0 and time.monotonic() - self._since >= seconds


class _AgentConsumer:
    """The fleet's consumer on one agent's ``topic``, as its gap closer asks it
    (``workers.stream.gaps.Consumer``)."""

    def __init__(self, fleet: Fleet, topic: str, activity: _Activity) -> None:
        self._fleet, self._topic, self._activity = fleet, topic, activity

    async def seek(self, partition: int, offset: int) -> None:
        """Seek ``partition`` back to ``offset``, so its records are fetched and delivered
        again (in the consumer's own thread, bounded)."""
        consumer = fleet_consumer(self._fleet.app)
        timeout_s = self._fleet.runtime.settings.kafka_timeout_ms / 1000 * 2
        try:
            async with asyncio.timeout(timeout_s):
                await consumer.seek_back(TP(self._topic, partition), offset)
        except Exception as e:  # the consumer is rebalancing, or Kafka is away (TimeoutError too)
            raise StreamUnavailable(
                f"seeking {self._topic}/{partition} back to {offset} failed: {e!r}"
            ) from e

    async def skip(self, partition: int, start: int, end: int) -> None:
        """Tell the consumer that ``[start, end)`` of the partition holds no record."""
        consumer = fleet_consumer(self._fleet.app)
        await consumer.skip_offsets(TP(self._topic, partition), start, end)

    def end(self, partition: int) -> int | None:
        """The partition's end as the consumer's last fetch saw it (None: not fetched yet)."""
        consumer = fleet_consumer(self._fleet.app)
        try:
            end = consumer.highwater(TP(self._topic, partition))
        except Exception:  # not assigned (a rebalance), or the consumer not started
            return None
        return int(end) if end is not None else None

    def quiet(self, seconds: float) -> bool:
        return self._activity.idle_for(seconds)
