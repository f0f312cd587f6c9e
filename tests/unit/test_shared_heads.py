"""The arrival check the reads of one aggregate share (``workers.http.ryw.heads``): a burst costs
one store read, a read never takes an answer read before it came, a failure reaches every read
that shared it and is not kept, and a read that leaves ends only its own wait."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from tests.waiting import wait_for, within
from topics.envelope import Event, new_event
from topics.errors import StoreUnavailable
from workers.adapters.memory.events import MemoryEventStore
from workers.adapters.memory.rejections import MemoryRejections
from workers.examples.domains import default_domains
from workers.http.ryw import NotYetStored, ReadAfter, WriteWaiter
from workers.http.ryw.heads import SharedHeads
from workers.ports import AggregateRef, Head

REF = ("order", "o-1")


class GatedHeads(MemoryEventStore):
    """Reads the heads at once, answers when the test opens the gate (a slow server's reply)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.running = 0
        self.most_running = 0

    async def heads(self, aggregates: Sequence[AggregateRef]) -> dict[AggregateRef, Head]:
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            found = await super().heads(aggregates)
            await self.gate.wait()
            return found
        finally:
            self.running -= 1


def placed(version: int = 1) -> list[Event]:
    return [new_event("order", "o-1", "OrderPlaced", {"items": []}, version=version)]


async def test_a_burst_of_reads_of_one_aggregate_costs_one_store_read() -> None:
    events = MemoryEventStore()
    await events.append(placed())
    heads = SharedHeads(events)
    versions = await asyncio.gather(*(heads.version(REF) for _ in range(300)))
    assert versions == [1] * 300 and events.faults.calls["heads"] == 1
    assert await heads.version(("order", "nobody")) == 0


async def test_through_the_waiter_a_burst_that_needs_no_wait_reads_the_head_once() -> None:
    events = MemoryEventStore()
    await events.append(placed())
    wait = WriteWaiter(domains=default_domains(), events=events, rejections=MemoryRejections())
    await asyncio.gather(*(wait.stored(REF, ReadAfter(1, None, wait_ms=0)) for _ in range(100)))
    assert events.faults.calls["heads"] == 1
    with pytest.raises(NotYetStored, match="has version 1 stored, not yet 2"):
        await wait.stored(REF, ReadAfter(2, None, wait_ms=0))


async def test_a_read_that_comes_while_one_runs_waits_for_the_next_and_sees_what_came_before() -> (
    None
):
    events = GatedHeads()
    heads = SharedHeads(events)
    first = asyncio.create_task(heads.version(REF))
    await wait_for(lambda: events.running == 1, timeout_s=10, what="the first read running")
    await events.append(placed())  # stored after the first read looked, before the second came
    second = asyncio.create_task(heads.version(REF))
    third = asyncio.create_task(heads.version(REF))
    # Opened after both have come: the loop runs what was scheduled in order (their first steps).
    asyncio.get_running_loop().call_soon(events.gate.set)
    reads = asyncio.gather(first, second, third)
    assert await within(reads, timeout_s=10, what="the three reads") == [0, 1, 1]
    assert events.faults.calls["heads"] == 2 and events.most_running == 1


async def test_a_failed_read_reaches_every_read_that_shared_it_and_is_not_kept() -> None:
    events = MemoryEventStore()
    heads = SharedHeads(events)
    events.fail_next(1, on="heads")
    answers = await asyncio.gather(*(heads.version(REF) for _ in range(5)), return_exceptions=True)
    assert all(isinstance(a, StoreUnavailable) for a in answers), answers
    await events.append(placed())
    assert await heads.version(REF) == 1  # read again, not the failure kept
    assert events.faults.calls["heads"] == 2


async def test_a_read_that_leaves_ends_only_its_own_wait() -> None:
    events = GatedHeads()
    heads = SharedHeads(events)
    leaving = asyncio.create_task(heads.version(REF))
    staying = asyncio.create_task(heads.version(REF))
    await wait_for(lambda: events.running == 1, timeout_s=10, what="the shared read running")
    leaving.cancel()
    events.gate.set()
    assert await within(staying, timeout_s=10, what="the read that stayed") == 0
    assert leaving.cancelled() and events.faults.calls["heads"] == 1
