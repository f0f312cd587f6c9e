"""Which errors stop a worker (fatal, batch unacked) and which only end an agent's task."""

from __future__ import annotations

import asyncio

import pytest

from workers.runtime.agents import a_failure


async def _raised_inside(error: BaseException) -> bool:
    """``a_failure`` as the agent's except clause sees ``error`` raised by its own work."""

    async def work() -> bool:
        try:
            raise error
        except BaseException as e:
            return a_failure(e)

    return await asyncio.create_task(work())


@pytest.mark.parametrize("error", [ValueError("bad"), TimeoutError(), RuntimeError("bug")])
async def test_every_exception_is_a_failure(error: Exception) -> None:
    assert await _raised_inside(error)


async def test_a_cancel_nobody_asked_for_is_a_failure() -> None:
    """What aiokafka's Fetcher.close did: re-raise the CancelledError of a fetch it had
    cancelled itself, in a task nobody was stopping."""
    assert await _raised_inside(asyncio.CancelledError())


async def test_a_library_task_cancelled_under_us_is_a_failure() -> None:
    """The same through an await: a task the library cancelled, awaited by our task."""
    inner = asyncio.ensure_future(asyncio.sleep(10))
    inner.cancel()

    async def work() -> bool:
        try:
            await inner
        except asyncio.CancelledError as e:
            return a_failure(e)
        return False

    assert await asyncio.create_task(work())


async def test_a_cancel_of_the_agent_itself_is_not() -> None:
    """Faust stopping the agent: the cancel goes on, nothing is fatal."""
    seen: list[bool] = []
    started = asyncio.Event()

    async def agent() -> None:
        try:
            started.set()
            await asyncio.sleep(10)
        except asyncio.CancelledError as e:
            seen.append(a_failure(e))
            raise

    task = asyncio.create_task(agent())
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == [False]


@pytest.mark.parametrize("error", [KeyboardInterrupt(), SystemExit(0)])
async def test_the_process_ending_is_not_a_failure(error: BaseException) -> None:
    assert not await _raised_inside(error)
