"""The forwarder never repeats: each (aggregate, version, part) once per downstream topic, across
redeliveries, copies on events.stored, produces cut short and a partition's change of owner."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence

import pytest

from snapshot_rules.domain import Domains
from tests.waiting import wait_for, within
from topics.errors import StreamOutcomeUnknown, StreamUnavailable
from workers.adapters.memory import MemoryProducer
from workers.adapters.memory.written import MemoryWrittenLog
from workers.metrics import Metrics, create_metrics
from workers.ports import Delivery, Outgoing, Record
from workers.roles.append.forwarder import Forwarder, ReadBack, position_of

from .forwarding import NAMES, as_consumed
from .support import added, sample


def copies(producer: MemoryProducer, topic: str) -> Counter[tuple[bytes | None, object]]:
    """How many records of ``topic`` each (key, position) has."""
    return Counter((r.key, position_of(r)) for r in producer.records(topic))


def make(
    producer: MemoryProducer, domains: Domains, metrics: Metrics, written: MemoryWrittenLog | None
) -> Forwarder:
    return Forwarder(
        producer=producer,
        domains=domains,
        names=NAMES,
        metrics=metrics,
        read_back=ReadBack(written),
    )


@pytest.fixture
def written(producer: MemoryProducer) -> MemoryWrittenLog:
    return MemoryWrittenLog(producer)


async def test_a_batch_delivered_again_sends_nothing_again(
    producer: MemoryProducer, domains: Domains, metrics: Metrics
) -> None:
    forwarder = make(producer, domains, metrics, None)
    batch = as_consumed(added("a", [1, 2, 3], closing=3))
    assert await forwarder.handle(batch) == 4
    assert await forwarder.handle(batch) == 0  # redelivered after a seek back
    assert max(copies(producer, "t.counters").values()) == 1
    assert sample(metrics, "eventfleet_forward_copies_skipped_total", topic="t.counters") == 3


async def test_a_copy_on_events_stored_goes_downstream_once(
    producer: MemoryProducer, domains: Domains, metrics: Metrics
) -> None:
    forwarder = make(producer, domains, metrics, None)
    first = added("b", [1, 2])
    # The appender republished version 2 (killed before its commit), in the same batch and later.
    batch = as_consumed([*first, first[1]])
    assert await forwarder.handle(batch) == 2
    assert await forwarder.handle(as_consumed([first[1]], first_offset=9)) == 0
    assert sorted(copies(producer, "t.counters").values()) == [1, 1]


async def test_a_new_owner_reads_back_and_skips_what_the_old_one_produced_past_the_commit(
    producer: MemoryProducer, domains: Domains, metrics: Metrics, written: MemoryWrittenLog
) -> None:
    old = make(producer, domains, metrics, written)
    await old.assigned({0})
    batch = as_consumed([*added("c", [1, 2, 3]), *added("d", [1, 2])])
    assert await old.handle(batch[:4]) == 4  # then killed before its commit
    new = make(producer, domains, create_metrics(), written)
    asked: list[set[int]] = []

    async def committed(partitions: object) -> dict[int, int | None]:
        asked.append(set(partitions))  # type: ignore[call-overload]
        return {0: None}

    new.track(committed)
    await new.assigned({0})
    assert await new.handle(batch) == 1  # only d/2 was never produced
    assert asked == [{0}] and written.reads == 4  # two topics, by each owner
    assert set(copies(producer, "t.counters").values()) == {1}
    assert len(producer.records("t.counters")) == 5


async def test_a_produce_cut_short_is_read_back_and_only_the_rest_is_sent(
    producer: MemoryProducer, domains: Domains, metrics: Metrics, written: MemoryWrittenLog
) -> None:
    forwarder = make(producer, domains, metrics, written)
    batch = as_consumed([*added("e", [1, 2, 3, 4]), *added("f", [1, 2])])
    producer.fail_after(3)  # three records acknowledged, then the call fails
    with pytest.raises(StreamUnavailable):
        await forwarder.handle(batch)
    assert len(producer.records("t.counters")) == 3
    assert await forwarder.handle(batch) == 3  # the agent's retry, after reading back
    assert written.reads == 1
    assert set(copies(producer, "t.counters").values()) == {1}
    assert len(producer.records("t.counters")) == 6
    # The six copies of the call that failed were unsure; none came twice here.
    assert sample(metrics, "eventfleet_forward_copies_unsure_total", topic="t.counters") == 6


async def test_a_timed_out_copy_the_broker_appends_after_the_read_back_is_counted_unsure(
    producer: MemoryProducer, domains: Domains, metrics: Metrics, written: MemoryWrittenLog
) -> None:
    """What the read-back cannot rule out (a stalled broker appends a timed-out request after
    it): the copy comes twice, and the forwarder counted it among its unsure copies."""
    stalled = _Stalls(producer)
    forwarder = Forwarder(
        producer=stalled, domains=domains, names=NAMES, metrics=metrics, read_back=ReadBack(written)
    )
    batch = as_consumed(added("e", [1, 2]))
    with pytest.raises(StreamOutcomeUnknown):
        await forwarder.handle(batch)  # the broker froze with the request in its socket
    assert producer.records("t.counters") == []  # nothing landed by the read-back
    stalled.frozen = False
    assert await forwarder.handle(batch) == 2  # read back, nothing found: sent again
    await stalled.thaw()  # the broker appends the request it held
    twice = [k for k, n in copies(producer, "t.counters").items() if n > 1]
    unsure = sample(metrics, "eventfleet_forward_copies_unsure_total", topic="t.counters")
    assert len(twice) == 2 and unsure == 2


class _Stalls:
    """A producer whose call times out while the broker holds its records: they land at
    ``thaw``, after whatever came since."""

    def __init__(self, producer: MemoryProducer) -> None:
        self._producer = producer
        self._held: list[tuple[str, Sequence[Outgoing]]] = []
        self.frozen = True

    async def send(
        self, topic: str, message: Outgoing, *, partition: int | None = None
    ) -> Delivery:
        raise AssertionError("the forwarder sends in batches")

    async def send_many(self, topic: str, messages: Sequence[Outgoing]) -> list[Delivery]:
        if not self.frozen:
            return await self._producer.send_many(topic, messages)
        self._held.append((topic, messages))
        raise StreamOutcomeUnknown(f"Kafka did not acknowledge a record for {topic}")

    async def thaw(self) -> None:
        for topic, messages in self._held:
            await self._producer.send_many(topic, messages)


class _LosesTheFirstBatch:
    """A producer whose first call loses its first record and lands the rest, then times out:
    a later batch of a partition landing after an earlier one was lost."""

    def __init__(self, producer: MemoryProducer) -> None:
        self._producer = producer
        self._calls = 0

    async def send(
        self, topic: str, message: Outgoing, *, partition: int | None = None
    ) -> Delivery:
        return await self._producer.send(topic, message, partition=partition)

    async def send_many(self, topic: str, messages: Sequence[Outgoing]) -> list[Delivery]:
        self._calls += 1
        if self._calls == 1:
            await self._producer.send_many(topic, messages[1:])
            raise StreamOutcomeUnknown(f"Kafka did not acknowledge a record for {topic}")
        return await self._producer.send_many(topic, messages)


async def test_a_hole_left_by_a_lost_batch_is_filled_never_skipped(
    producer: MemoryProducer, domains: Domains, metrics: Metrics, written: MemoryWrittenLog
) -> None:
    forwarder = Forwarder(
        producer=_LosesTheFirstBatch(producer),
        domains=domains,
        names=NAMES,
        metrics=metrics,
        read_back=ReadBack(written),
    )
    batch = as_consumed(added("g", [1, 2, 3]))
    with pytest.raises(StreamOutcomeUnknown):
        await forwarder.handle(batch)
    assert await forwarder.handle(batch) == 3  # version 1 missing: resent, and what follows it
    versions = Counter(p for _, p in copies(producer, "t.counters").elements())
    assert set(versions) == {(1, 0), (2, 0), (3, 0)}  # none lost (2 and 3 twice: at least once)


async def test_the_written_log_down_sends_nothing_until_it_answers(
    producer: MemoryProducer, domains: Domains, metrics: Metrics, written: MemoryWrittenLog
) -> None:
    forwarder = make(producer, domains, metrics, written)
    await forwarder.assigned({0})
    written.down()
    batch = as_consumed(added("h", [1, 2]))
    with pytest.raises(StreamUnavailable) as caught:
        await forwarder.handle(batch)
    assert caught.value.retriable and producer.records("t.counters") == []
    written.up()
    assert await forwarder.handle(batch) == 2


async def test_a_revoked_partition_is_not_forwarded(
    producer: MemoryProducer, domains: Domains, metrics: Metrics, written: MemoryWrittenLog
) -> None:
    forwarder = make(producer, domains, metrics, written)
    await forwarder.assigned({0, 1})
    await forwarder.revoked({0})
    assert await forwarder.handle(as_consumed(added("i", [1]))) == 0  # its next owner's
    assert producer.topics() == []
    await forwarder.assigned({0})  # back again: read back before producing
    assert await forwarder.handle(as_consumed(added("i", [1]))) == 1
    assert written.reads == 2  # both topics, once: nothing was produced meanwhile


async def test_a_partition_whose_assignment_was_not_heard_of_is_read_back_not_dropped(
    producer: MemoryProducer, domains: Domains, metrics: Metrics, written: MemoryWrittenLog
) -> None:
    forwarder = make(producer, domains, metrics, written)
    await forwarder.assigned({1})
    assert await forwarder.handle(as_consumed(added("k", [1, 2]))) == 2  # partition 0
    assert written.reads == 2


async def test_records_that_name_no_position_are_ignored_when_read_back() -> None:
    def record(headers: list[tuple[str, bytes]], value: bytes = b"not json") -> Record:
        return Record("t.counters", 0, 0, b"k", value, headers)

    assert position_of(record([("eventfleet-version", b"7"), ("eventfleet-part", b"1")])) == (7, 1)
    assert position_of(record([("eventfleet-version", b"seven")])) is None
    assert position_of(record([])) is None  # neither headers nor an envelope
    [event] = added("j", [4])
    from topics.envelope import encode

    assert position_of(record([], encode(event))) == (4, 0)  # written before the headers


async def test_a_revoke_waits_for_the_produce_in_flight(
    producer: MemoryProducer, domains: Domains, metrics: Metrics, written: MemoryWrittenLog
) -> None:
    """The partition's next owner must read back everything this one wrote: a revoke returns
    only once no produce of the partition is on its way."""
    forwarder = make(producer, domains, metrics, written)
    await forwarder.assigned({0})
    producer.faults.hold(on="send")
    forwarding = asyncio.ensure_future(forwarder.handle(as_consumed(added("m", [1, 2]))))
    await wait_for(lambda: producer.faults.held == 1, timeout_s=2, what="the produce to stall")
    revoking = asyncio.ensure_future(forwarder.revoked({0}))
    done, _ = await asyncio.wait({revoking}, timeout=0.2)
    assert not done, "the revoke returned while a produce of the partition was on its way"
    producer.faults.release()
    assert await forwarding == 2
    await within(revoking, timeout_s=2, what="the revoke")
    assert len(producer.records("t.counters")) == 2


async def test_after_a_failed_produce_it_waits_for_the_producer_to_settle_before_reading_back(
    producer: MemoryProducer, domains: Domains, metrics: Metrics, written: MemoryWrittenLog
) -> None:
    said: list[str] = []

    async def settle() -> None:
        said.append(f"settled after {written.reads} reads")

    forwarder = Forwarder(
        producer=producer,
        domains=domains,
        names=NAMES,
        metrics=metrics,
        read_back=ReadBack(written, settle=settle),
    )
    batch = as_consumed(added("n", [1, 2]))
    assert await forwarder.handle(batch) == 2
    assert said == []  # nothing failed: nothing to wait for
    producer.fail_after(0)
    with pytest.raises(StreamUnavailable):
        await forwarder.handle(as_consumed(added("n", [3]), first_offset=2))
    assert await forwarder.handle(as_consumed(added("n", [3]), first_offset=2)) == 1
    assert said == ["settled after 0 reads"] and written.reads == 1
