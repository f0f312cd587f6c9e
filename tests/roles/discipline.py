"""The appender agent's loop in miniature, as the commit-discipline tests drive it:
``Harness`` (take records, retry failed calls, ack via the offset ledger, tell whether a record's
fate is written down), ``harness`` to build it, ``unfaulted`` to look past planted faults, and the
topic names, wait and order data it uses."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from snapshot_rules.domain import Domains
from tests.clock import Clock
from topics.envelope import Event, decode, encode, kafka_headers
from topics.errors import InvalidEnvelope, Unavailable
from workers.adapters.memory import MemoryEventStore, MemoryProducer, MemoryRejections
from workers.adapters.memory.common import Faults
from workers.adapters.memory.parked import MemoryParkedEvents
from workers.examples.domains.order import ORDER
from workers.metrics import create_metrics
from workers.ports import Record
from workers.roles.append.appender import Appender
from workers.roles.append.book import AppenderConfig
from workers.roles.append.fates import DeadLetterFates
from workers.roles.append.given import AppendStores, Replies
from workers.roles.deadletter import DeadLetters
from workers.runtime.answers import reply_of
from workers.stream.offsets import OffsetLedger

EVENTS, STORED, REPLIES, DLQ = "t.events", "t.events.stored", "t.commands.replies", "t.events.dlq"
WAIT_S = 2.0
DATA = {
    "OrderPlaced": {"items": [{"sku": "tea", "qty": 1, "price": 2}]},
    "OrderPaid": {"amount": 2},
    "OrderShipped": {"carrier": "dhl"},
    "OrderCancelled": {},
}


@dataclass
class Harness:
    """The appender agent's loop in miniature: take records, retry failed calls, ack via the ledger."""

    appender: Appender
    store: MemoryEventStore
    rejections: MemoryRejections
    producer: MemoryProducer
    clock: Clock
    ledger: OffsetLedger[Record] = field(default_factory=OffsetLedger)
    offsets: dict[int, int] = field(default_factory=dict)
    retry: list[list[Record]] = field(default_factory=list)  # batches whose handle raised
    released: list[Record] = field(default_factory=list)
    topic: dict[int, list[Record]] = field(default_factory=dict)  # the partitions' contents
    committed: dict[int, int] = field(default_factory=dict)
    parked: MemoryParkedEvents | None = None  # on: a dead letter parks its aggregate

    def produce(self, events: list[Event], partition: int) -> list[Record]:
        out = []
        for event in events:
            offset = self.offsets.get(partition, 0)
            self.offsets[partition] = offset + 1
            record = Record(
                EVENTS, partition, offset, event.key, encode(event), kafka_headers(event)
            )
            self.topic.setdefault(partition, []).append(record)
            out.append(record)
        return out

    async def deliver(self, records: list[Record]) -> None:
        """As the agent does: only a record not held yet, nor released, is handed on."""
        fresh = [r for r in records if self.ledger.take(r.partition, r.offset, r) == "new"]
        if fresh:
            await self._call(fresh)

    async def _call(self, records: list[Record]) -> None:
        try:
            decided = await self.appender.handle(records)
        except Unavailable:
            self.retry.append(records)
            return
        self._settle(decided)

    async def retry_failed(self) -> None:
        batches, self.retry = self.retry, []
        for records in batches:
            await self._call(records)

    async def tick(self) -> None:
        try:
            self._settle(await self.appender.expire())
        except Unavailable:
            pass

    async def close_gaps(self) -> None:
        """The agent's gap closer: a partition starts at its commit; a hole is redelivered, and
        so is a lost tail (the agent is idle in this harness whenever it is not called)."""
        for partition in self.ledger.unknown():
            self.ledger.start(partition, self.committed.get(partition, 0))
        for gap in self.ledger.gaps():
            assert gap.floor is not None
            await self.deliver(self.topic[gap.partition][gap.floor : gap.first])
        for partition, records in self.topic.items():
            expected = self.ledger.expected(partition)
            if expected is not None and expected < len(records):
                await self.deliver(records[expected:])
        self._settle([])

    def revoke(self, partition: int) -> None:
        """A rebalance: the partition's next owner (this process again) reads from the commit."""
        self.appender.forget({partition})
        self.appender.assign({0, 1})
        self.ledger.revoke([partition])
        self.ledger.expect([partition])  # assigned again: its start is read anew
        self.retry = [[r for r in b if r.partition != partition] for b in self.retry]
        self.retry = [b for b in self.retry if b]

    async def redeliver(self, partition: int) -> None:
        start = self.committed.get(partition, 0)
        await self.deliver(self.topic.get(partition, [])[start:])

    def _settle(self, decided: list[Record]) -> None:
        for record in decided:
            self.ledger.decide(record.partition, record.offset)
        for record in self.ledger.release():
            self.released.append(record)
            self.committed[record.partition] = record.offset + 1

    async def accounted(self, record: Record) -> bool:
        """The record's fate is written down: stored, refused (recorded), or dead-lettered."""
        try:
            event = decode(record.value)
        except InvalidEnvelope:
            event = None
        if event is not None:
            with unfaulted(self.store, self.rejections):
                if event.id in await self.store.find([event.id]):
                    return True
                if event.id in await self.rejections.find([event.id]):
                    return True
        source = f"{EVENTS}/{record.partition}/{record.offset}"
        letters = [dict(r.headers) for r in self.producer.records(DLQ)]
        mine = [h for h in letters if h.get("dlq_source") == source.encode()]
        if self.parked is not None and mine and all("dlq_parked" in h for h in mine):
            return await self.is_parked(record)  # on the DLQ, and durably in its queue
        return bool(mine)

    async def is_parked(self, record: Record) -> bool:
        if self.parked is None:
            return False
        source = f"{EVENTS}/{record.partition}/{record.offset}"
        with unfaulted(self.parked):
            return source in await self.parked.sources([source])


@contextlib.contextmanager
def unfaulted(*adapters: Any) -> Iterator[None]:
    """Look at the adapters' contents without taking (or tripping over) a planted fault."""
    kept = [adapter.faults for adapter in adapters]
    for adapter in adapters:
        adapter.faults = Faults(lambda what: AssertionError(what))
    try:
        yield
    finally:
        for adapter, faults in zip(adapters, kept, strict=True):
            adapter.faults = faults


def harness(*, parking: bool = False) -> Harness:
    clock = Clock()
    metrics = create_metrics()
    store, rejections = MemoryEventStore(), MemoryRejections()
    producer = MemoryProducer(default_partitions=1)
    appender = Appender(
        stores=AppendStores(
            store, rejections, parked=(parked := MemoryParkedEvents() if parking else None)
        ),
        replies=Replies(producer, reply_of),
        dead_letters=DeadLetters(producer, topic=DLQ, role="appender", metrics=metrics),
        domains=Domains([ORDER]),
        metrics=metrics,
        config=AppenderConfig(STORED, REPLIES, max_event_bytes=100_000, wait_s=WAIT_S),
        fates=DeadLetterFates(
            store=store,
            rejections=rejections,
            replies=Replies(producer, reply_of),
            replies_topic=REPLIES,
        ),
        clock=clock,
    )
    appender.assign({0, 1})
    h = Harness(appender, store, rejections, producer, clock, parked=parked)
    if parking:  # as the agent wires it: records past a gap wait (and park) after it closes
        appender.hold_past_gaps(h.ledger.open_below)
    h.ledger.expect([0, 1])  # both partitions assigned to this agent
    return h
