"""Whole fetched batches from the consumer to the batch agents, without Faust's per-record stream.

Faust hands every record on its own from the fetch to an agent: the fetch loop waits for each
record's delivery in a race of four tasks against a flow stop (``Service.wait_first``), the
conductor decodes it into an ``Event`` and queues it, and the stream iterator takes it out again,
runs sensors and processors and passes it to ``noack_take``'s buffer. An agent on a
``BatchTopic`` gets the records as fetched instead: the consumer's fetch loop (``drain``) hands
each partition's records of one fetch to every reader of the topic in one call, as Faust
``Message`` objects with their raw key and value, and the agent ``take``s up to a batch of them.

What Faust's path guarantees is kept: records of a partition stay in offset order; each reader's
delivery of a record is acked once (``ack``: Faust commits past a record only when every reader
acked it); records fetched before a rebalance are dropped, not handed out (their generation, and
Faust's flow control, which clears every reader's buffer when it resumes, as it clears stream
queues); a reader with too many records waiting pauses fetching of the partitions it gets
(Faust's buffer pressure), and the fetch loop itself never waits on a reader. Records of topics
read by other channels too (a plain Faust agent, a table) take Faust's own way; if such a channel
shares a topic with a ``BatchTopic``, the conductor's records still reach the batch reader.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

import faust
from faust.transport.consumer import CONSUMER_FETCHING, Consumer
from faust.types import TP, AppT, ChannelT, ConsumerT, EventT, Message, ServiceT, StreamT

log = logging.getLogger(__name__)

YIELD_EVERY = 100
"""Records delivered one by one (Faust's way) between two turns of the event loop, as Faust."""


class Record(Protocol):
    """A fetched record as aiokafka (untyped) hands it over: its offset is all read here."""

    @property
    def offset(self) -> int: ...


class FetchedBatches:
    """One reader's records fetched and not yet taken, in the order they were delivered (each
    delivery one partition's records of one fetch, in offset order)."""

    def __init__(self, app: AppT, *, maxsize: int) -> None:
        self._app = app
        self._maxsize = maxsize  # more waiting than this pauses fetching of their partitions
        self._deliveries: deque[tuple[int | None, list[Message]]] = deque()
        self._count = 0
        self._want = 1  # how many records wake ``take``
        self._arrived = asyncio.Event()
        self._paused: set[TP] = set()
        self._thrown: BaseException | None = None
        # Cleared with Faust's stream queues: mode only calls clear() on a managed queue, so this
        # stands in for one (it is not mode's FlowControlQueue).
        app.flow_control.manage_queue(self)  # type: ignore[arg-type]  # a stand-in with clear()

    @property
    def waiting(self) -> int:
        """Records fetched and not yet taken."""
        return self._count

    def deliver(self, tp: TP, messages: list[Message], generation: int | None) -> None:
        """Hold ``messages`` (of ``tp``, fetched in consumer generation ``generation``)."""
        if not messages:
            return
        self._deliveries.append((generation, messages))
        self._count += len(messages)
        if self._count >= self._want:
            self._arrived.set()
        if self._count >= self._maxsize and tp not in self._paused:
            self._paused.add(tp)
            self._app.consumer.on_buffer_full(tp)

    async def take(self, most: int, within_s: float) -> list[Message]:
        """Wait for a record, then up to ``within_s`` for ``most``; take up to ``most`` records.

        Records fetched in an earlier consumer generation are dropped (the partition was sought
        to its committed offset since), and nothing is taken while Faust holds the flow (a
        rebalance; resuming clears this buffer). Raises what Faust throws into the channel:
        ``StopAsyncIteration`` when it stops the agent.
        """
        while True:
            self._raise_thrown()
            if not self._count:
                await self._wait_for(1)
            if self._count < most:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(within_s):
                        await self._wait_for(most)
            flow = self._app.flow_control
            if not flow.is_active():
                await flow.acquire()
                continue
            taken = self._pop(most)
            if taken:
                return taken

    async def _wait_for(self, count: int) -> None:
        self._want = count
        try:
            while self._count < count:
                self._arrived.clear()
                await self._arrived.wait()
                self._raise_thrown()
        finally:
            self._want = 1

    def _raise_thrown(self) -> None:
        thrown, self._thrown = self._thrown, None
        if thrown is not None:
            raise thrown

    def _throw(self, exc: BaseException) -> None:
        """Faust's way to end a reader (``Actor.cancel``): ``take`` raises ``exc``."""
        self._thrown = exc
        self._arrived.set()

    def _pop(self, most: int) -> list[Message]:
        generation = self._app.consumer_generation_id
        taken: list[Message] = []
        while self._deliveries and len(taken) < most:
            fetched_in, messages = self._deliveries.popleft()
            room = most - len(taken)
            if len(messages) > room:
                self._deliveries.appendleft((fetched_in, messages[room:]))
                messages = messages[:room]
            self._count -= len(messages)
            if fetched_in == generation:
                taken += messages
        if self._paused and self._count <= self._maxsize // 2:
            self._resume()
        return taken

    def _resume(self) -> None:
        consumer = self._app.consumer
        for tp in self._paused:
            consumer.on_buffer_drop(tp)
        self._paused.clear()

    def clear(self) -> None:
        """Drop every record held (Faust's flow control: a rebalance)."""
        self._deliveries.clear()
        self._count = 0
        if self._paused:
            self._resume()

    def qsize(self) -> int:
        return self._count

    def empty(self) -> bool:
        return not self._count

    # What Faust's conductor calls when it delivers a record itself (a topic shared with a
    # channel that takes records one by one): the record joins the batches.

    def full(self) -> bool:
        return False  # never blocks the conductor: pressure pauses the partition instead

    def put_nowait_enhanced(self, event: EventT[object], **callbacks: object) -> bool:
        message = event.message
        self.deliver(message.tp, [message], message.generation_id)
        return False

    async def put(self, event: EventT[object]) -> None:
        self.put_nowait_enhanced(event)


class BatchTopic(faust.Topic):
    """A topic whose agent takes whole fetched batches (``fetched``) rather than a stream."""

    _batches: FetchedBatches | None = None

    @property
    def batches(self) -> FetchedBatches:
        if self._batches is None:
            maxsize = self.maxsize or self.app.conf.stream_buffer_maxsize
            self._batches = FetchedBatches(self.app, maxsize=maxsize)
        return self._batches

    def __aiter__(self) -> ChannelT[object]:
        # The reading clone shares the buffer of the stream's channel, which Faust throws into
        # to stop the agent.
        channel = super().__aiter__()
        if isinstance(channel, BatchTopic) and channel is not self:
            channel._batches = self.batches
        return channel

    @property
    def queue(self) -> FetchedBatches:  # type: ignore[override]  # does what the conductor uses
        # Where the conductor puts what it delivers itself: the batches, in the queue's stead. It
        # only puts, sizes and checks it: FetchedBatches does all that.
        return self.batches


def fetched(stream: StreamT[object]) -> FetchedBatches:
    """Subscribe an agent's ``BatchTopic`` (as iterating its stream would) and return where its
    fetched records arrive."""
    channel = stream.channel.__aiter__()  # the reading clone, added to the conductor
    if not isinstance(channel, BatchTopic):
        raise TypeError(f"{stream.channel!r} is not a BatchTopic: its records come one by one")
    return channel.batches


def ack(consumer: ConsumerT, messages: Iterable[Message]) -> None:
    """This reader is done with ``messages``: once every reader of a record acked it, Faust's
    commits may pass it."""
    for message in messages:
        message.ack(consumer)


def batch_readers(app: AppT) -> dict[str, list[FetchedBatches]]:
    """Topic name → its readers, for topics whose every channel in this process is a
    ``BatchTopic`` reading all its partitions."""
    readers: dict[str, list[FetchedBatches]] = {}
    others: set[str] = set()
    for channel in app.topics:
        if channel.pattern is not None:
            return {}  # a pattern may name any topic: let Faust deliver everything
        batch = (
            channel
            if isinstance(channel, BatchTopic) and channel.active_partitions is None
            else None
        )
        for name in channel.topics:
            if batch is not None:
                readers.setdefault(name, []).append(batch.batches)
            else:
                others.add(name)
    return {name: found for name, found in readers.items() if name not in others}


async def drain(consumer: Consumer, fetcher: ServiceT) -> None:
    """Faust's fetch loop (``Consumer._drain_messages``), except that the records of a topic read
    only by ``BatchTopic`` agents go to them a fetched partition at a time."""
    consumer_stopped = consumer._stopped.is_set
    # Faust's fetcher is a mode Service; its ServiceT does not declare _stopped.
    fetcher_stopped = fetcher._stopped.is_set  # type: ignore[attr-defined]  # not on ServiceT
    diag = consumer.diag
    try:
        while not (consumer_stopped() or fetcher_stopped()):
            diag.set_flag(CONSUMER_FETCHING)
            await asyncio.sleep(0)  # a fetch may come back at once, again and again
            if not consumer.should_stop:
                records, active = await consumer._wait_next_records(1.0)
                if records and not consumer.should_stop:
                    await _hand_out(consumer, records, active)
            diag.unset_flag(CONSUMER_FETCHING)
    except consumer.consumer_stopped_errors:
        if consumer.transport.app.should_stop:
            log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if consumer.transport.app.should_stop:
            log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        diag.unset_flag(CONSUMER_FETCHING)


async def _hand_out(
    consumer: Consumer, records: Mapping[TP, list[Record]], active: set[TP] | None
) -> None:
    """Deliver one fetch: batch topics a partition at a time, the rest record by record."""
    app = consumer.app
    generation = app.consumer_generation_id
    if not consumer.flow_active:
        # As Faust: records fetched while the flow stopped are dropped; fetch them again.
        try:
            await consumer.perform_seek()
        except Exception as e:
            log.warning("exception performing seek when flow not active %s", e)
        return
    readers = batch_readers(app)
    singly = {}
    for tp, batch in records.items():
        if not consumer.flow_active or app.consumer_generation_id != generation:
            return
        if active is not None and tp not in active and tp not in consumer._buffered_partitions:
            continue
        found = readers.get(tp.topic)
        if found is None:
            singly[tp] = batch
            continue
        app.monitor.track_tp_end_offset(tp, consumer.highwater(tp))
        await _deliver_batch(consumer, tp, batch, found, generation)
    if singly:
        await _deliver_singly(consumer, singly, active, generation)


async def _deliver_batch(
    consumer: Consumer,
    tp: TP,
    batch: Sequence[Record],
    readers: list[FetchedBatches],
    generation: int,
) -> None:
    """One partition's records of one fetch to every reader of its topic, in one call each.

    Faust's guess at holes from jumps in the offsets (``_add_gap``) is left out: this fleet's
    consumer ignores it (``faust_app.FleetConsumer._add_gap``); the agents' offset ledgers decide.
    """
    app = consumer.app
    read = consumer._read_offset[tp]
    to_message = consumer._to_message
    messages: list[Message] = [to_message(tp, r) for r in batch if read is None or r.offset >= read]
    if not messages:
        return
    commit_every = consumer._commit_every
    if commit_every is not None and consumer._n_acked >= commit_every:
        consumer._n_acked = 0
        await consumer.commit()
    flow = app.flow_control
    if not flow.is_active():  # recovering after a rebalance: the records wait for it, as Faust's
        await consumer.wait_first(flow.acquire(), consumer.suspend_flow.wait())
        if not consumer.flow_active or app.consumer_generation_id != generation:
            return
    await app.producer.buffer.wait_until_ebb()
    for message in messages:
        message.refcount = len(readers)  # each reader acks its delivery once
    owned = TP(tp.topic, tp.partition)  # the fetch's key is aiokafka's: Faust's pause wants its own
    for reader in readers:
        reader.deliver(owned, messages, generation)
    consumer._read_offset[tp] = messages[-1].offset


async def _deliver_singly(
    consumer: Consumer,
    records: Mapping[TP, list[Record]],
    active: set[TP] | None,
    generation: int,
) -> None:
    """Faust's own delivery, record by record through the conductor (its ``getmany`` and
    ``_drain_messages`` loop bodies)."""
    app = consumer.app
    callback = consumer.callback
    to_message = consumer._to_message
    read_offsets = consumer._read_offset
    commit_every = consumer._commit_every
    since_yield = 0
    for tp, record in consumer.scheduler.iterate(records):
        if not consumer.flow_active or app.consumer_generation_id != generation:
            return
        app.monitor.track_tp_end_offset(tp, consumer.highwater(tp))
        message = to_message(tp, record)
        since_yield += 1
        if since_yield > YIELD_EVERY:
            await asyncio.sleep(0)
            since_yield = 0
        read = read_offsets[tp]
        if read is not None and message.offset < read:
            continue
        if read and message.offset - read > 1:
            await consumer._add_gap(tp, read + 1, message.offset)
        if commit_every is not None and consumer._n_acked >= commit_every:
            consumer._n_acked = 0
            await consumer.commit()
        await consumer.wait_first(callback(message), consumer.suspend_flow.wait())
        read_offsets[tp] = message.offset
