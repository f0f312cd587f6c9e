"""close_quietly: a client's close is bounded and quiet, and a CancelledError it re-raises from a
task of its own is not taken for a cancel of the caller; a real cancel still goes through."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import KafkaConnectionError

from tests.waiting import within
from workers.adapters.kafka.closing import close_quietly


async def test_a_cancelled_error_from_a_task_the_client_cancelled_is_quiet() -> None:
    async def stop() -> None:  # as aiokafka's fetcher: cancels a fetch in flight, awaits it
        fetch = asyncio.create_task(asyncio.sleep(60))
        await asyncio.sleep(0)
        fetch.cancel()
        await fetch

    await close_quietly(stop, timeout_s=1, what="test")  # returns: the caller carries on


@pytest.mark.parametrize("error", [KafkaConnectionError("gone"), OSError("reset"), TimeoutError()])
async def test_an_error_closing_is_quiet(error: BaseException) -> None:
    async def stop() -> None:
        raise error

    await close_quietly(stop, timeout_s=1, what="test")


async def test_a_close_that_hangs_ends_at_its_bound() -> None:
    never = asyncio.Event()
    closing = asyncio.create_task(close_quietly(never.wait, timeout_s=0.05, what="test"))
    await within(closing, timeout_s=10, what="the close to give up")  # None after 0.05 s
    assert closing.done() and closing.exception() is None


async def test_a_cancel_of_the_caller_goes_through() -> None:
    started = asyncio.Event()

    async def stop() -> None:
        started.set()
        await asyncio.sleep(60)

    closing = asyncio.create_task(close_quietly(stop, timeout_s=30, what="test"))
    await started.wait()
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    assert closing.cancelled()
