"""Closing an agent's offset gaps against what Kafka holds (memory positions): a partition starts at
the group's commit, a hole that holds records is sought back and redelivered, a hole that holds
none is stepped over, a lost tail is found while the agent is idle, and Kafka away closes
nothing."""

from __future__ import annotations

import pytest

from tests.clock import Clock
from topics.errors import StreamUnavailable
from workers.adapters.memory import MemoryPositions, MemoryProducer
from workers.metrics import create_metrics
from workers.ports import Outgoing
from workers.stream.gaps import GapCloser
from workers.stream.offsets import Gap, OffsetLedger

TOPIC, GROUP = "t.events", "g-appender"


class Consumer:
    """What the closer drives: seeks and skipped holes are recorded; ``end`` per partition."""

    def __init__(self) -> None:
        self.seeks: list[tuple[int, int]] = []
        self.skips: list[tuple[int, int, int]] = []
        self.ends: dict[int, int] = {}
        self.receiving = False  # True: the agent keeps receiving records (a backlog)

    async def seek(self, partition: int, offset: int) -> None:
        self.seeks.append((partition, offset))

    async def skip(self, partition: int, start: int, end: int) -> None:
        self.skips.append((partition, start, end))

    def end(self, partition: int) -> int | None:
        return self.ends.get(partition)

    def quiet(self, seconds: float) -> bool:
        return not self.receiving


@pytest.fixture
def produced() -> MemoryProducer:
    producer = MemoryProducer(partitions={TOPIC: 2})
    return producer


async def fill(producer: MemoryProducer, partition: int, count: int) -> None:
    for n in range(count):
        await producer.send(TOPIC, Outgoing(b"k", f"v{n}".encode()), partition=partition)


def closer(positions: MemoryPositions, consumer: Consumer, clock: Clock) -> GapCloser:
    return GapCloser(
        positions=positions, consumer=consumer, group=GROUP, topic=TOPIC, role="appender",
        metrics=create_metrics(), clock=clock,
    )  # fmt: skip


def held(ledger: OffsetLedger[int], partition: int, *offsets: int) -> None:
    for offset in offsets:
        ledger.take(partition, offset, offset)
        ledger.decide(partition, offset)


async def test_a_partition_starts_at_the_group_s_commit_or_at_its_first_offset(
    produced: MemoryProducer,
) -> None:
    await fill(produced, 0, 8)
    await fill(produced, 1, 3)
    positions, consumer, ledger = MemoryPositions(produced), Consumer(), OffsetLedger[int]()
    positions.commit(GROUP, TOPIC, 0, 5)  # partition 1: the group never committed
    ledger.expect([0, 1])
    held(ledger, 0, 5, 6)
    held(ledger, 1, 0)
    assert await closer(positions, consumer, Clock(100.0)).close(ledger) == 0
    assert ledger.release() == [5, 6, 0]
    assert consumer.seeks == [] and consumer.skips == []


async def test_a_hole_holding_records_is_sought_back_once_and_redelivered(
    produced: MemoryProducer,
) -> None:
    await fill(produced, 0, 10)
    positions, consumer, clock = MemoryPositions(produced), Consumer(), Clock(100.0)
    ledger: OffsetLedger[int] = OffsetLedger()
    positions.commit(GROUP, TOPIC, 0, 2)
    consumer.receiving = True
    gaps = closer(positions, consumer, clock)
    held(ledger, 0, 2, 3, 7, 8)  # 4..6 were fetched and dropped before the agent
    assert await gaps.close(ledger) == 0  # the hole is not at the head yet
    assert ledger.release() == [2, 3]
    assert ledger.gaps() == [Gap(0, 4, 7)]
    assert await gaps.close(ledger) == 1
    assert await gaps.close(ledger) == 1
    assert consumer.seeks == [(0, 4)]  # once: the redelivery is on its way
    clock.now += 60  # a backlog fetched before the seek still flows: it comes behind it
    assert await gaps.close(ledger) == 1 and consumer.seeks == [(0, 4)]
    consumer.receiving = False  # the flow stopped and the hole is still open: the seek was lost
    assert await gaps.close(ledger) == 1 and consumer.seeks == [(0, 4), (0, 4)]
    held(ledger, 0, 4, 5, 6, 7)  # 7 again, too: both its deliveries are acked
    assert await gaps.close(ledger) == 0
    assert ledger.release() == [4, 5, 6, 7, 7, 8] and consumer.skips == []


async def test_a_hole_holding_no_record_is_stepped_over_and_told_to_the_consumer(
    produced: MemoryProducer,
) -> None:
    await fill(produced, 1, 6)
    positions, consumer, ledger = MemoryPositions(produced), Consumer(), OffsetLedger[int]()
    positions.commit(GROUP, TOPIC, 1, 0)
    positions.hole(TOPIC, 1, [2, 3])  # a transaction's markers
    held(ledger, 1, 0, 1, 4, 5)
    gaps = closer(positions, consumer, Clock(100.0))
    assert await gaps.close(ledger) == 0
    assert ledger.release() == [0, 1]
    assert await gaps.close(ledger) == 0
    assert ledger.release() == [4, 5]
    assert consumer.skips == [(1, 2, 4)] and consumer.seeks == []


async def test_a_lost_tail_is_found_while_idle_and_an_empty_one_is_read_once(
    produced: MemoryProducer,
) -> None:
    await fill(produced, 0, 6)
    positions, consumer, ledger = MemoryPositions(produced), Consumer(), OffsetLedger[int]()
    positions.commit(GROUP, TOPIC, 0, 0)
    gaps = closer(positions, consumer, Clock(100.0))
    held(ledger, 0, 0, 1, 2)  # 3..5 fetched and dropped: nothing after them shows the hole
    await gaps.close(ledger)
    assert ledger.release() == [0, 1, 2] and ledger.gaps() == []
    consumer.ends[0] = 6
    assert await gaps.check_tail(ledger)  # a redelivery is on its way
    assert await gaps.check_tail(ledger) and consumer.seeks == [(0, 3)]
    held(ledger, 0, 3, 4, 5)
    await gaps.close(ledger)
    assert ledger.release() == [3, 4, 5]
    assert not await gaps.check_tail(ledger)
    consumer.ends[0] = 7  # a marker past the last record: read once, never sought
    positions.hole(TOPIC, 0, [6])
    assert not await gaps.check_tail(ledger)
    assert not await gaps.check_tail(ledger)
    assert consumer.seeks == [(0, 3)]


async def test_with_kafka_away_nothing_is_started_and_nothing_released(
    produced: MemoryProducer,
) -> None:
    await fill(produced, 0, 3)
    positions, consumer, ledger = MemoryPositions(produced), Consumer(), OffsetLedger[int]()
    positions.commit(GROUP, TOPIC, 0, 0)
    positions.down()
    held(ledger, 0, 0, 1, 2)
    with pytest.raises(StreamUnavailable):
        await closer(positions, consumer, Clock(100.0)).close(ledger)
    assert ledger.release() == [] and ledger.gaps() == [Gap(0, None, 0)]
    positions.up()
    assert await closer(positions, consumer, Clock(100.0)).close(ledger) == 0
    assert ledger.release() == [0, 1, 2]
