"""The forwarder behind ``InOrder``: a partition's stored events go downstream in offset order,
none past an offset the agent has not received, whatever order the records reach it in.

The offset ledger is the agent's own (``OffsetLedger``): what it has taken is what "received"
means, exactly as in the running agent.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from snapshot_rules.domain import Domains
from topics.envelope import Event, decode, encode, kafka_headers
from topics.errors import StreamUnavailable
from workers.adapters.memory import MemoryProducer
from workers.metrics import Metrics
from workers.ports import Record
from workers.roles.append.forwarder import Forwarder
from workers.roles.append.in_order import InOrder, Pair
from workers.stream.offsets import OffsetLedger

from .forwarding import NAMES
from .support import added


class Agent:
    """What the batch agent does around the role: take every delivered record into the ledger,
    hand the new ones to ``InOrder``, decide what it handed on."""

    def __init__(self, forwarder: Forwarder, *, floors: dict[int, int]) -> None:
        self.ledger: OffsetLedger[int] = OffsetLedger()
        for partition, floor in floors.items():
            self.ledger.start(partition, floor)  # the group's committed offsets, as read
        self.in_order = InOrder(forwarder.handle, self.ledger.open_below)
        self.acked: list[tuple[int, int]] = []

    async def deliver(self, pairs: Sequence[Pair]) -> list[Record]:
        new = [p for p in pairs if self.ledger.take(p[1].partition, p[1].offset, 0) == "new"]
        return self._decided(await self.in_order.take(new))

    async def tick(self) -> list[Record]:
        return self._decided(await self.in_order.tick())

    def _decided(self, records: list[Record]) -> list[Record]:
        for record in records:
            self.ledger.decide(record.partition, record.offset)
        self.acked += [(r.partition, r.offset) for r in records]
        self.ledger.release()
        return records


def consumed(events: Sequence[Event], *, partition: int = 0, first: int = 0) -> list[Pair]:
    return [
        (e, Record(NAMES.stored, partition, first + n, e.key, encode(e), kafka_headers(e)))
        for n, e in enumerate(events)
    ]


def versions(producer: MemoryProducer, aggregate: str) -> list[int]:
    out = [decode(r.value) for r in producer.records("t.counters")]
    return [e.version or 0 for e in out if e.aggregate_id == aggregate]


@pytest.fixture
def forwarder(producer: MemoryProducer, domains: Domains, metrics: Metrics) -> Forwarder:
    return Forwarder(producer=producer, domains=domains, names=NAMES, metrics=metrics)


async def test_a_hole_redelivered_after_later_records_goes_first(
    forwarder: Forwarder, producer: MemoryProducer
) -> None:
    """The live bug this guards: the gap closer redelivers a hole after the records past it; sent
    as they came, downstream carried versions [2, 3, 1]."""
    agent = Agent(forwarder, floors={0: 0})
    pairs = consumed(added("c1", [1, 2, 3]))
    assert await agent.deliver(pairs[1:]) == []  # offset 0 never arrived: 1 and 2 wait
    assert producer.records("t.counters") == [] and agent.in_order.held() == 2
    assert agent.ledger.committable() == {0: 0}  # nothing held may be committed past
    handed = await agent.deliver(pairs[:1])  # the gap closer's redelivery
    assert [r.offset for r in handed] == [0, 1, 2]
    assert versions(producer, "c1") == [1, 2, 3]
    assert agent.acked == [(0, 0), (0, 1), (0, 2)] and agent.in_order.held() == 0


async def test_without_the_hold_the_hole_is_lost_downstream(
    forwarder: Forwarder, producer: MemoryProducer
) -> None:
    """The witness can fail: handed on as delivered, version 2 raises the forwarder's high mark
    and the redelivered version 1 is taken for a copy already written, and skipped for good
    (why the first exactly-once forwarder lost version 1 of 88 aggregates after a stall)."""
    pairs = consumed(added("c1", [1, 2, 3]))
    await forwarder.handle(pairs[1:])
    await forwarder.handle(pairs[:1])
    assert versions(producer, "c1") == [2, 3]


async def test_a_hole_with_no_record_releases_what_waited_on_the_next_tick(
    forwarder: Forwarder, producer: MemoryProducer
) -> None:
    agent = Agent(forwarder, floors={0: 0})
    pairs = consumed(added("c2", [1, 2]), first=5)  # offsets 5, 6; 0..4 unseen
    assert await agent.deliver(pairs) == [] and await agent.tick() == []
    agent.ledger.start(0, 5)  # the gap closer found no record in [0, 5): the floor moves
    assert [r.offset for r in await agent.tick()] == [5, 6]
    assert versions(producer, "c2") == [1, 2]
    assert not agent.in_order.holds_work()


async def test_an_unknown_start_holds_everything_until_it_is_read(
    forwarder: Forwarder, producer: MemoryProducer
) -> None:
    agent = Agent(forwarder, floors={})  # assigned; its committed offset not read yet
    pairs = consumed(added("c3", [1]), first=7)
    assert await agent.deliver(pairs) == []
    agent.ledger.start(0, 7)
    assert [r.offset for r in await agent.tick()] == [7]


async def test_a_hole_in_one_partition_holds_no_other(
    forwarder: Forwarder, producer: MemoryProducer
) -> None:
    agent = Agent(forwarder, floors={0: 0, 1: 0})
    held = consumed(added("p0", [1, 2]), partition=0)
    free = consumed(added("p1", [1, 2]), partition=1)
    handed = await agent.deliver([held[1], *free])
    assert [(r.partition, r.offset) for r in handed] == [(1, 0), (1, 1)]
    assert versions(producer, "p1") == [1, 2] and versions(producer, "p0") == []


async def test_a_failed_send_loses_nothing_and_the_retry_sends_each_once(
    forwarder: Forwarder, producer: MemoryProducer
) -> None:
    agent = Agent(forwarder, floors={0: 0})
    pairs = consumed(added("c4", [1, 2, 3]))
    await agent.deliver(pairs[1:])
    producer.down()
    agent.ledger.take(0, 0, 0)  # the hole's record arrives; the agent hands it on, and retries
    with pytest.raises(StreamUnavailable):
        await agent.in_order.take([pairs[0]])  # the agent's first try, Kafka away
    assert agent.in_order.held() == 3 and agent.acked == []
    producer.up()
    handed = await agent.in_order.take([pairs[0]])  # its retry of the same records
    assert [r.offset for r in handed] == [0, 1, 2]
    assert versions(producer, "c4") == [1, 2, 3]
    # A record delivered again once handed on (a retry after the call's answer was lost) is
    # decided at once, not sent again.
    assert [r.offset for r in await agent.in_order.take(pairs[:1])] == [0]
    assert versions(producer, "c4") == [1, 2, 3]


async def test_records_held_when_their_partition_is_revoked_are_dropped_unacked(
    forwarder: Forwarder, producer: MemoryProducer
) -> None:
    agent = Agent(forwarder, floors={0: 0, 1: 0})
    await agent.deliver(consumed(added("c5", [2, 3]), first=1))  # offset 0 missing: held
    agent.in_order.forget({0})  # revoked: the next owner reads them again from the commit
    agent.ledger.revoke({0})
    assert agent.in_order.held() == 0 and await agent.tick() == []
    assert agent.acked == [] and producer.records("t.counters") == []
    # Assigned again: read from the commit, in order, as a new owner would.
    agent.ledger.start(0, 0)
    handed = await agent.deliver(consumed(added("c5", [1, 2, 3])))
    assert [r.offset for r in handed] == [0, 1, 2] and versions(producer, "c5") == [1, 2, 3]
