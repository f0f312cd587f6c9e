"""A batch agent's fetched records (``workers.stream.fetched.FetchedBatches``): what it takes,
in which order, and what it drops, on Faust's real flow control and messages."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
from faust.types import TP, ConsumerMessage
from mode.utils.queues import FlowControlEvent

from tests.waiting import within
from workers.stream.fetched import FetchedBatches, ack

pytestmark = pytest.mark.asyncio

EVENTS = "fleet.events"


@dataclass
class FakeConsumer:
    """Records Faust's buffer-pressure calls and final acks."""

    full: list[TP] = field(default_factory=list)
    dropped: list[TP] = field(default_factory=list)
    acked: list[tuple[int, int]] = field(default_factory=list)

    def on_buffer_full(self, tp: TP) -> None:
        self.full.append(tp)

    def on_buffer_drop(self, tp: TP) -> None:
        self.dropped.append(tp)

    def ack(self, message: ConsumerMessage) -> bool:  # as Faust's Consumer.ack
        if message.acked:
            return False
        message.acked = True
        self.acked.append((message.partition, message.offset))
        return True


@dataclass
class FakeApp:
    """The parts of a Faust app the batches use: flow control, the consumer, its generation."""

    flow_control: FlowControlEvent = field(
        default_factory=lambda: FlowControlEvent(initially_suspended=False)
    )
    consumer: FakeConsumer = field(default_factory=FakeConsumer)
    consumer_generation_id: int = 1


def messages(partition: int, offsets: range, generation: int = 1) -> list[ConsumerMessage]:
    tp = TP(EVENTS, partition)
    return [
        ConsumerMessage(EVENTS, partition, o, 0.0, 0, [], b"k", b"v", None, tp=tp,
                        generation_id=generation)
        for o in offsets
    ]  # fmt: skip


def offsets(taken: list[ConsumerMessage]) -> list[tuple[int, int]]:
    return [(m.partition, m.offset) for m in taken]


async def test_a_whole_fetch_is_taken_at_once_in_delivery_order() -> None:
    app = FakeApp()
    batches = FetchedBatches(app, maxsize=100)
    batches.deliver(TP(EVENTS, 0), messages(0, range(3)), 1)
    batches.deliver(TP(EVENTS, 1), messages(1, range(5, 7)), 1)
    taken = await batches.take(10, within_s=0.01)
    assert offsets(taken) == [(0, 0), (0, 1), (0, 2), (1, 5), (1, 6)]
    assert batches.empty()


async def test_a_batch_never_exceeds_its_size_and_the_rest_keeps_its_order() -> None:
    app = FakeApp()
    batches = FetchedBatches(app, maxsize=100)
    batches.deliver(TP(EVENTS, 0), messages(0, range(5)), 1)
    batches.deliver(TP(EVENTS, 1), messages(1, range(3)), 1)
    first = await batches.take(4, within_s=0.01)
    second = await batches.take(4, within_s=0.01)
    assert offsets(first) == [(0, 0), (0, 1), (0, 2), (0, 3)]
    assert offsets(second) == [(0, 4), (1, 0), (1, 1), (1, 2)]
    assert batches.qsize() == 0


async def test_take_waits_for_a_record_and_then_no_longer_than_within() -> None:
    app = FakeApp()
    batches = FetchedBatches(app, maxsize=100)
    taking = asyncio.ensure_future(batches.take(500, within_s=0.05))
    await asyncio.sleep(0.02)
    assert not taking.done()  # nothing yet: it waits without a bound
    batches.deliver(TP(EVENTS, 0), messages(0, range(2)), 1)
    started = asyncio.get_running_loop().time()
    taken = await within(taking, timeout_s=2, what="the batch taken")
    waited = asyncio.get_running_loop().time() - started
    assert offsets(taken) == [(0, 0), (0, 1)]
    assert waited < 1.0  # within_s, not forever, for the batch to fill


async def test_a_full_batch_is_taken_without_waiting_for_within() -> None:
    app = FakeApp()
    batches = FetchedBatches(app, maxsize=100)
    taking = asyncio.ensure_future(batches.take(3, within_s=60))
    await asyncio.sleep(0)
    batches.deliver(TP(EVENTS, 0), messages(0, range(1)), 1)
    await asyncio.sleep(0)
    batches.deliver(TP(EVENTS, 0), messages(0, range(1, 4)), 1)
    taken = await within(taking, timeout_s=2, what="the batch taken")
    assert offsets(taken) == [(0, 0), (0, 1), (0, 2)]
    assert offsets(await batches.take(3, within_s=0.01)) == [(0, 3)]


async def test_records_of_an_earlier_consumer_generation_are_dropped() -> None:
    app = FakeApp(consumer_generation_id=2)
    batches = FetchedBatches(app, maxsize=100)
    batches.deliver(TP(EVENTS, 0), messages(0, range(3), generation=1), 1)
    batches.deliver(TP(EVENTS, 0), messages(0, range(3), generation=2), 2)
    taken = await batches.take(10, within_s=0.01)
    assert [(m.offset, m.generation_id) for m in taken] == [(0, 2), (1, 2), (2, 2)]


async def test_faust_clearing_its_queues_clears_the_batches() -> None:
    app = FakeApp()
    batches = FetchedBatches(app, maxsize=100)
    batches.deliver(TP(EVENTS, 0), messages(0, range(3)), 1)
    app.flow_control.suspend()
    app.flow_control.clear()  # what Faust does on a revocation
    assert batches.empty()
    app.flow_control.resume()
    batches.deliver(TP(EVENTS, 0), messages(0, range(3, 4)), 1)
    assert offsets(await batches.take(10, within_s=0.01)) == [(0, 3)]


async def test_nothing_is_taken_while_faust_holds_the_flow() -> None:
    app = FakeApp()
    batches = FetchedBatches(app, maxsize=100)
    app.flow_control.suspend()
    batches.deliver(TP(EVENTS, 0), messages(0, range(2)), 1)
    taking = asyncio.ensure_future(batches.take(10, within_s=0.01))
    await asyncio.sleep(0.05)
    assert not taking.done()
    app.flow_control.resume()  # clears what was fetched before: fetched again after the seek
    batches.deliver(TP(EVENTS, 0), messages(0, range(2)), 1)
    assert offsets(await within(taking, timeout_s=2, what="the refetch")) == [(0, 0), (0, 1)]


async def test_too_many_records_waiting_pause_their_partitions_until_half_are_taken() -> None:
    app = FakeApp()
    batches = FetchedBatches(app, maxsize=10)
    batches.deliver(TP(EVENTS, 0), messages(0, range(6)), 1)
    assert app.consumer.full == []
    batches.deliver(TP(EVENTS, 1), messages(1, range(6)), 1)
    batches.deliver(TP(EVENTS, 1), messages(1, range(6, 8)), 1)
    assert app.consumer.full == [TP(EVENTS, 1)]  # once, for the partition that overflowed
    await batches.take(4, within_s=0.01)  # 10 left: still over half
    assert app.consumer.dropped == []
    await batches.take(6, within_s=0.01)  # 4 left
    assert app.consumer.dropped == [TP(EVENTS, 1)]


async def test_clearing_resumes_paused_partitions() -> None:
    app = FakeApp()
    batches = FetchedBatches(app, maxsize=2)
    batches.deliver(TP(EVENTS, 3), messages(3, range(3)), 1)
    batches.clear()
    assert app.consumer.dropped == [TP(EVENTS, 3)]


async def test_a_record_the_conductor_delivers_itself_joins_the_batches() -> None:
    app = FakeApp()
    batches = FetchedBatches(app, maxsize=100)

    @dataclass
    class Event:
        message: ConsumerMessage

    assert not batches.full()
    first, second = messages(2, range(7, 9))
    batches.put_nowait_enhanced(Event(first), on_pressure_high=None, on_pressure_drop=None)
    await batches.put(Event(second))
    assert offsets(await batches.take(10, within_s=0.01)) == [(2, 7), (2, 8)]


async def test_a_record_read_by_two_agents_is_acked_to_faust_once_both_acked() -> None:
    app = FakeApp()
    record = messages(0, range(1))
    record[0].refcount = 2
    ack(app.consumer, record)
    assert app.consumer.acked == []
    ack(app.consumer, record)
    assert app.consumer.acked == [(0, 0)]
    ack(app.consumer, record)  # acked once, whatever happens after
    assert app.consumer.acked == [(0, 0)]


async def test_an_empty_delivery_wakes_nobody() -> None:
    app = FakeApp()
    batches = FetchedBatches(app, maxsize=100)
    batches.deliver(TP(EVENTS, 0), [], 1)
    taking = asyncio.ensure_future(batches.take(10, within_s=0.01))
    await asyncio.sleep(0.05)
    assert not taking.done()
    taking.cancel()


async def test_what_faust_throws_to_stop_an_agent_ends_its_wait() -> None:
    app = FakeApp()
    batches = FetchedBatches(app, maxsize=100)
    taking = asyncio.ensure_future(batches.take(10, within_s=0.01))
    await asyncio.sleep(0.01)
    batches._throw(StopAsyncIteration())  # Actor.cancel
    with pytest.raises(StopAsyncIteration):
        await within(taking, timeout_s=2, what="the thrown stop")
    batches.deliver(TP(EVENTS, 0), messages(0, range(1)), 1)  # thrown once, not for good
    assert offsets(await batches.take(10, within_s=0.01)) == [(0, 0)]
