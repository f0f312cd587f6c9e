"""Shared deadlines: a wait ends with its future or at its slice's end, never cancelling it."""

from __future__ import annotations

import asyncio

import pytest

from workers.adapters.kafka.deadlines import SharedDeadlines


async def test_a_wait_returns_the_result_or_raises_the_error_of_its_future() -> None:
    deadlines = SharedDeadlines(5.0)
    loop = asyncio.get_running_loop()
    done: asyncio.Future[int] = loop.create_future()
    done.set_result(1)
    assert await deadlines.wait(done) == 1
    later: asyncio.Future[int] = loop.create_future()
    loop.call_soon(later.set_result, 2)
    assert await deadlines.wait(later) == 2
    failing: asyncio.Future[int] = loop.create_future()
    loop.call_soon(failing.set_exception, OSError("broker gone"))
    with pytest.raises(OSError, match="broker gone"):
        await deadlines.wait(failing)


async def test_waits_due_together_time_out_together_and_leave_their_records_running() -> None:
    deadlines = SharedDeadlines(0.01)
    loop = asyncio.get_running_loop()
    records: list[asyncio.Future[int]] = [loop.create_future() for _ in range(50)]
    outcomes = await asyncio.gather(*(deadlines.wait(r) for r in records), return_exceptions=True)
    assert all(isinstance(o, TimeoutError) for o in outcomes)
    assert not any(r.done() for r in records)  # still in flight: an unknown outcome, not "unsent"
    records[0].set_result(7)  # an ack arriving after the wait ended changes nothing
    await asyncio.sleep(0)


async def test_cancelling_the_caller_cancels_only_its_wait() -> None:
    deadlines = SharedDeadlines(5.0)
    record: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def caller() -> int:
        return await deadlines.wait(record)

    waiting = asyncio.create_task(caller())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert not record.done()
    record.set_result(1)
    await asyncio.sleep(0)
