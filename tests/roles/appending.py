"""An appender on memory adapters, as the appender's role tests drive it: ``Rig`` and
``make_rig``, the topic names and order data it uses, ``order`` to make its events, and ``whole``
(a store that holds every aggregate from version 1) for its ``whole_in_hot``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from snapshot_rules.domain import Domains
from tests.clock import Clock
from tests.orders import ITEMS
from topics.envelope import Event, Metadata, decode, encode, kafka_headers, new_event
from workers.adapters.memory import (
    MemoryCommandMemory,
    MemoryEventStore,
    MemoryMarker,
    MemoryProducer,
    MemoryRejections,
)
from workers.examples.domains.account import ACCOUNT
from workers.examples.domains.order import ORDER
from workers.metrics import Metrics, create_metrics
from workers.ports import Record
from workers.roles.append.appender import Appender
from workers.roles.append.book import AppenderConfig
from workers.roles.append.given import AppendStores, Replies
from workers.roles.deadletter import DeadLetters
from workers.runtime.answers import reply_of

EVENTS, STORED, REPLIES, DLQ = "t.events", "t.events.stored", "t.commands.replies", "t.events.dlq"
WAIT_S = 2.0
DATA = {"OrderPlaced": ITEMS, "OrderPaid": {"amount": 2}, "OrderShipped": {"carrier": "dhl"}}


@dataclass
class Rig:
    """An appender on memory adapters, and a way to feed it records."""

    appender: Appender
    store: MemoryEventStore
    rejections: MemoryRejections
    producer: MemoryProducer
    marker: MemoryMarker
    memory: MemoryCommandMemory
    clock: Clock
    metrics: Metrics
    offset: int = field(default=0)

    def records(self, events: list[Event], *, partition: int = 0) -> list[Record]:
        out = []
        for e in events:
            out.append(Record(EVENTS, partition, self.offset, e.key, encode(e), kafka_headers(e)))
            self.offset += 1
        return out

    async def take(self, events: list[Event]) -> list[Record]:
        return await self.appender.handle(self.records(events))

    async def history(self, order: str = "o1") -> list[tuple[str, int | None]]:
        return [(e.type, e.version) for e in await self.store.select(("order", order))]

    def published(self) -> list[tuple[str, int | None]]:
        return [
            (decode(r.value).type, decode(r.value).version) for r in self.producer.records(STORED)
        ]


async def whole(aggregate_type: str) -> bool:
    """A store that holds every aggregate from version 1 (nothing archived)."""
    return True


def make_rig(whole_in_hot: Callable[[str], Awaitable[bool]] | None) -> Rig:
    clock = Clock()
    metrics = create_metrics()
    store, rejections = MemoryEventStore(), MemoryRejections()
    producer, marker = MemoryProducer(default_partitions=1), MemoryMarker(clock=clock)
    memory = MemoryCommandMemory(clock=clock, records=marker.records)
    appender = Appender(
        stores=AppendStores(store, rejections, whole_in_hot=whole_in_hot),
        replies=Replies(producer, reply_of, marker, memory),
        dead_letters=DeadLetters(producer, topic=DLQ, role="appender", metrics=metrics),
        domains=Domains([ORDER, ACCOUNT]),
        metrics=metrics,
        config=AppenderConfig(STORED, REPLIES, max_event_bytes=100_000, wait_s=WAIT_S),
        clock=clock,
    )
    return Rig(appender, store, rejections, producer, marker, memory, clock, metrics)


def order(kind: str, after: str | None, *, command: str | None = None, oid: str = "o1") -> Event:
    metadata = Metadata(command_id=command)
    return new_event("order", oid, kind, DATA.get(kind, {}), after=after, metadata=metadata)
