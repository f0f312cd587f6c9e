"""Which errors stop a worker (fatal, batch unacked) and which only end an agent's task."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from tests.waiting import within
from workers.runtime.failures import a_failure
from workers.runtime.fleet import stop_in_turn


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
    await within(started.wait(), timeout_s=5, what="the agent started")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == [False]


@pytest.mark.parametrize("error", [KeyboardInterrupt(), SystemExit(0)])
async def test_the_process_ending_is_not_a_failure(error: BaseException) -> None:
    assert not await _raised_inside(error)


def _step(
    name: str,
    done: list[str],
    raised: BaseException | None = None,
    hang: asyncio.Event | None = None,
) -> tuple[str, Callable[[], Awaitable[None]]]:
    """A part to stop: it records its name, raises ``raised``; with ``hang``, it sets that event
    and never finishes."""

    async def stop() -> None:
        if hang is not None:
            hang.set()
            await asyncio.Event().wait()
        done.append(name)
        if raised is not None:
            raise raised

    return name, stop


async def test_a_stray_cancel_while_draining_does_not_skip_the_parts_after_it() -> None:
    """The Faust app's stop re-raising a CancelledError of a task it cancelled: the positions
    and the clients are stopped all the same."""
    done: list[str] = []
    steps = [
        _step("health checks", done),
        ("lag exporter", None),
        _step("Faust app", done, asyncio.CancelledError()),
        _step("positions", done, RuntimeError("broken")),
        _step("clients", done),
    ]
    deadline = asyncio.get_running_loop().time() + 5
    assert await asyncio.create_task(stop_in_turn(steps, deadline)) is False
    assert done == ["health checks", "Faust app", "positions", "clients"]


async def test_a_part_past_the_deadline_is_left_and_the_rest_stopped() -> None:
    done: list[str] = []
    steps = [_step("Faust app", done, hang=asyncio.Event()), _step("clients", done)]
    deadline = asyncio.get_running_loop().time() + 0.2
    assert await stop_in_turn(steps, deadline) is True
    assert done == ["clients"]


async def test_a_cancel_of_the_drain_itself_goes_on() -> None:
    """Stopping the drain (its task cancelled) is not a part failing: nothing after it runs."""
    done: list[str] = []
    in_first = asyncio.Event()
    steps = [_step("Faust app", done, hang=in_first), _step("clients", done)]
    deadline = asyncio.get_running_loop().time() + 30
    draining = asyncio.create_task(stop_in_turn(steps, deadline))
    await within(in_first.wait(), timeout_s=10, what="the drain in its first step")
    draining.cancel()
    with pytest.raises(asyncio.CancelledError):
        await draining
    assert done == []
