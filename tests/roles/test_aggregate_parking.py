"""An event the appender cannot store parks its aggregate alone (issue 38): what follows it waits in
order in the parked queue, other aggregates move on, and replaying or skipping the head releases
the rest, judged again. On the memory adapters; tests/e2e/test_parking.py runs the fleet."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from snapshot_rules.domain import Domains
from tests.clock import Clock
from tests.orders import ITEMS
from topics.envelope import NEW_AGGREGATE, Event, Metadata, decode, encode, kafka_headers, new_event
from topics.errors import InvalidInput, NotFound, StoreUnavailable
from workers.adapters.memory import MemoryEventStore, MemoryMarker, MemoryProducer, MemoryRejections
from workers.adapters.memory.parked import MemoryParkedEvents
from workers.examples.domains.order import ORDER
from workers.metrics import create_metrics
from workers.ports import PARKED, MarkRequest, Record
from workers.roles.append.appender import Appender
from workers.roles.append.book import AppenderConfig
from workers.roles.append.given import AppendStores, Replies
from workers.roles.append.parking import PARK_POLL_S
from workers.roles.deadletter import DeadLetters
from workers.roles.ops.audit import Auditor, AuditSources
from workers.runtime.answers import reply_of

EVENTS, STORED, REPLIES, DLQ = "t.events", "t.events.stored", "t.commands.replies", "t.events.dlq"
DATA = {"OrderPlaced": ITEMS, "OrderPaid": {"amount": 2}, "OrderShipped": {"carrier": "dhl"}}


@dataclass
class Rig:
    store: MemoryEventStore
    rejections: MemoryRejections
    producer: MemoryProducer
    parked: MemoryParkedEvents
    clock: Clock
    appender: Appender = field(init=False)
    offset: int = 0

    def __post_init__(self) -> None:
        self.appender = self.new_appender()

    def new_appender(self) -> Appender:
        """A fresh process: nothing in memory but what the stores keep."""
        metrics = create_metrics()
        appender = Appender(
            stores=AppendStores(self.store, self.rejections, parked=self.parked),
            replies=Replies(self.producer, reply_of),
            dead_letters=DeadLetters(self.producer, topic=DLQ, role="appender", metrics=metrics),
            domains=Domains([ORDER]),
            metrics=metrics,
            config=AppenderConfig(STORED, REPLIES, max_event_bytes=100_000, wait_s=2.0),
            clock=self.clock,
        )
        appender.assign({0})
        return appender

    def records(self, events: list[Event]) -> list[Record]:
        out = []
        for e in events:
            out.append(Record(EVENTS, 0, self.offset, e.key, encode(e), kafka_headers(e)))
            self.offset += 1
        return out

    async def history(self, oid: str) -> list[tuple[str, int | None]]:
        return [(e.type, e.version) for e in await self.store.select(("order", oid))]

    async def queue(self, oid: str) -> list[tuple[int, str, str]]:
        entries = await self.parked.queue(f"order:{oid}", limit=100)
        return [(e.seq, decode(e.record.value).type, e.reason) for e in entries]

    async def tick(self) -> list[Record]:
        self.clock.now += PARK_POLL_S
        return await self.appender.expire()

    def dlq(self) -> list[tuple[str, str, str]]:
        return [
            (h["dlq_reason"].decode(), h.get("dlq_parked", b"").decode(),
             h.get("dlq_park_seq", b"").decode())
            for r in self.producer.records(DLQ) for h in [dict(r.headers)]
        ]  # fmt: skip


@pytest.fixture
def rig() -> Rig:
    return Rig(MemoryEventStore(), MemoryRejections(), MemoryProducer(default_partitions=1),
               MemoryParkedEvents(), Clock())  # fmt: skip


def order(
    kind: str, after: str | None, oid: str = "o1", *, schema: int = 1, cid: str | None = None
) -> Event:
    return new_event("order", oid, kind, DATA.get(kind, {}), after=after, schema_version=schema,
                     metadata=Metadata(command_id=cid))  # fmt: skip


def poisoned_chain() -> list[Event]:
    """OrderPlaced written by newer code (unknown schema version here), and 3 valid followers."""
    placed = order("OrderPlaced", NEW_AGGREGATE, schema=9)
    paid = order("OrderPaid", placed.id)
    shipped = order("OrderShipped", paid.id)
    delivered = order("OrderDelivered", shipped.id)
    return [placed, paid, shipped, delivered]


async def test_a_poison_event_parks_its_aggregate_in_order_and_the_partition_moves_on(
    rig: Rig,
) -> None:
    a = poisoned_chain()
    b = order("OrderPlaced", NEW_AGGREGATE, "o2")
    records = rig.records([a[0], a[1], b, a[2], a[3]])
    decided = await rig.appender.handle(records)
    assert sorted(r.offset for r in decided) == [0, 1, 2, 3, 4]  # all decided: offsets move on
    assert await rig.history("o2") == [("OrderPlaced", 1)]
    assert await rig.history("o1") == []
    assert await rig.queue("o1") == [
        (1, "OrderPlaced", "unknown_schema_version"), (2, "OrderPaid", PARKED),
        (3, "OrderShipped", PARKED), (4, "OrderDelivered", PARKED),
    ]  # fmt: skip
    assert rig.dlq() == [("unknown_schema_version", "order:o1", "1"), ("parked", "order:o1", "2"),
                         ("parked", "order:o1", "3"), ("parked", "order:o1", "4")]  # fmt: skip
    # Nothing is released while the head waits for an operator; a later event joins the queue.
    cancel = new_event("order", "o1", "OrderCancelled", {"reason": "late"}, after=a[1].id)
    await rig.appender.handle(rig.records([cancel]))
    await rig.tick()
    assert [seq for seq, *_ in await rig.queue("o1")] == [1, 2, 3, 4, 5]
    assert await rig.history("o1") == []


async def test_replaying_the_head_releases_the_rest_in_order(rig: Rig) -> None:
    a = poisoned_chain()
    await rig.appender.handle(rig.records(a))
    head = (await rig.parked.queue("order:o1", limit=1))[0]
    fixed = order("OrderPlaced", NEW_AGGREGATE, cid=head.replay_command_id)
    decided = await rig.appender.handle(rig.records([fixed]))
    assert [r.offset for r in decided] == [4]
    assert await rig.history("o1") == [
        ("OrderPlaced", 1),
        ("OrderPaid", 2),
        ("OrderShipped", 3),
        ("OrderDelivered", 4),
    ]
    assert await rig.queue("o1") == []


async def test_skipping_the_head_judges_the_rest_again_and_refuses_what_no_longer_fits(
    rig: Rig,
) -> None:
    a = poisoned_chain()
    await rig.appender.handle(rig.records(a))
    with pytest.raises(InvalidInput, match="waits behind the head of its queue"):
        await rig.parked.resolve("order:o1", 2, "skip", "ops")  # not the head: nothing changes
    assert (await rig.parked.queue("order:o1", limit=1))[0].resolution is None
    await rig.parked.resolve("order:o1", 1, "skip", "ops")
    await rig.tick()
    assert await rig.history("o1") == []  # OrderPaid cannot be an order's first event
    refused = await rig.rejections.find([e.id for e in a[1:]])
    assert {r.reason for r in refused.values()} == {"transition_rejected_at_store"}
    assert len(refused) == 3 and await rig.queue("o1") == []
    # Released: o1 takes events again as any aggregate does.
    await rig.appender.handle(rig.records([order("OrderPlaced", NEW_AGGREGATE)]))
    assert await rig.history("o1") == [("OrderPlaced", 1)]


async def test_a_new_process_keeps_the_aggregate_parked(rig: Rig) -> None:
    a = poisoned_chain()
    await rig.appender.handle(rig.records(a[:2]))
    rig.appender = rig.new_appender()  # the first one was killed
    await rig.appender.handle(rig.records(a[2:]))
    await rig.tick()
    assert await rig.history("o1") == []
    assert [seq for seq, *_ in await rig.queue("o1")] == [1, 2, 3, 4]


async def test_a_redelivered_record_is_parked_once(rig: Rig) -> None:
    a = poisoned_chain()
    records = rig.records(a)
    rig.parked.faults.fail_next(1, on="park")  # the queue write fails: nothing is decided
    with pytest.raises(StoreUnavailable):
        await rig.appender.handle(records)
    await rig.appender.handle(records)
    await rig.appender.handle(records[1:])  # redelivered after a crash
    assert [seq for seq, *_ in await rig.queue("o1")] == [1, 2, 3, 4]


async def test_resolving_an_aggregate_that_is_not_parked_is_refused(rig: Rig) -> None:
    with pytest.raises(NotFound, match="is not parked"):
        await rig.parked.resolve("order:nobody", 1, "skip", "ops")


async def test_the_auditor_knows_a_parked_aggregate_is_no_gap_and_no_stale_mark(rig: Rig) -> None:
    placed = order("OrderPlaced", NEW_AGGREGATE)
    poison = order("OrderPaid", placed.id, schema=9)
    shipped = order("OrderShipped", poison.id)
    await rig.appender.handle(rig.records([placed, poison, shipped]))
    assert await rig.history("o1") == [("OrderPlaced", 1)]
    marker = MemoryMarker()  # the command side marked the last event it accepted: parked
    await marker.check_and_mark(
        MarkRequest("order:o1", shipped.type, shipped.id, ["*"], fallback="-")
    )
    without = Auditor(
        Domains([ORDER]), AuditSources(events=rig.store, marks=marker), mark_bound_s=0.01
    )
    assert [f.kind for f in (await without.audit()).findings] == ["stale_mark"]
    sources = AuditSources(events=rig.store, marks=marker, parked=rig.parked)
    report = await Auditor(Domains([ORDER]), sources, mark_bound_s=0.01).audit()
    assert report.ok and [(f.kind, f.aggregate_id) for f in report.findings] == [("parked", "o1")]
    assert "2 events wait in order" in report.findings[0].detail
    assert report.checked["parked"] == 1


async def test_a_rebalance_reads_the_aggregates_another_process_parked(rig: Rig) -> None:
    a = poisoned_chain()
    await rig.appender.handle(rig.records([order("OrderPlaced", NEW_AGGREGATE, "o2")]))
    other = rig.new_appender()  # held partition 0 before: it parks o1
    await other.handle(rig.records(a[:2]))
    rig.appender.assign({0})  # partition 0 comes here: its parked aggregates are read again
    await rig.appender.handle(rig.records(a[2:]))
    assert await rig.history("o1") == []
    assert [seq for seq, *_ in await rig.queue("o1")] == [1, 2, 3, 4]


async def test_a_garbled_copy_of_a_stored_event_parks_nothing(rig: Rig) -> None:
    placed = order("OrderPlaced", NEW_AGGREGATE)
    await rig.appender.handle(rig.records([placed]))
    [record] = rig.records([placed])
    garbled = Record(EVENTS, 0, record.offset, record.key, encode(placed)[:20],
                     (("event_id", placed.id.encode()),))  # fmt: skip
    paid = order("OrderPaid", placed.id)
    await rig.appender.handle([garbled, *rig.records([paid])])
    assert await rig.history("o1") == [("OrderPlaced", 1), ("OrderPaid", 2)]
    assert await rig.queue("o1") == [] and [r for r, *_ in rig.dlq()] == ["undecodable"]


async def test_bytes_that_are_no_event_park_the_aggregate_their_key_names(rig: Rig) -> None:
    poison = Record(EVENTS, 0, rig.offset, b"order:o3", b"\x00 not an envelope")
    rig.offset += 1
    placed = order("OrderPlaced", NEW_AGGREGATE, "o3")
    foreign = Record(EVENTS, 0, rig.offset, b"spaceship:x", b"\x00")  # no domain: not parked
    rig.offset += 1
    decided = await rig.appender.handle([poison, foreign, *rig.records([placed])])
    assert len(decided) == 3 and await rig.history("o3") == []
    entries = await rig.parked.queue("order:o3", limit=10)
    assert [(e.seq, e.reason, e.event_id) for e in entries] == [
        (1, "undecodable", None),
        (2, PARKED, placed.id),
    ]
    assert entries[0].replay_command_id == f"dlq-replay:{EVENTS}/0/{poison.offset}"
    assert ("undecodable", "", "") in rig.dlq()  # the foreign key: a plain dead letter


async def test_a_poison_record_past_a_gap_parks_after_the_records_redelivered_into_it(
    rig: Rig,
) -> None:
    placed = order("OrderPlaced", NEW_AGGREGATE)
    paid = order("OrderPaid", placed.id)
    shipped = order("OrderShipped", paid.id, schema=9)  # the poison
    early = rig.records([placed, paid])  # offsets 0 and 1: lost on the way at first
    [late] = rig.records([shipped])
    gap = {"open": True}
    rig.appender.hold_past_gaps(lambda partition, offset: gap["open"] and offset > 1)
    assert await rig.appender.handle([late]) == []  # held back: not decided, not parked
    assert await rig.queue("o1") == [] and rig.appender.holds_work()
    gap["open"] = False
    decided = await rig.appender.handle(early)
    decided += await rig.tick()
    assert sorted(r.offset for r in decided) == [0, 1, 2]
    assert await rig.history("o1") == [("OrderPlaced", 1), ("OrderPaid", 2)]
    assert await rig.queue("o1") == [(1, "OrderShipped", "unknown_schema_version")]
