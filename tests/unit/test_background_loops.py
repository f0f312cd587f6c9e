"""A background loop of a fleet process that ends by an error: fatal while the process serves,
a debug line while it stops (its stores close under it), and never left for asyncio to report
as an exception never retrieved."""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import cast

import pytest

from tests.waiting import within
from workers.runtime.fleet import Fleet
from workers.runtime.serve import _fatal_unless_cancelled, end_loops


class Stopping:
    """What the callback reads of the fleet: whether it stops, and what it was told is fatal."""

    def __init__(self, stopped: bool) -> None:
        self.stopped = asyncio.Event()
        if stopped:
            self.stopped.set()
        self.fatal_calls: list[tuple[str, BaseException]] = []

    def fatal(self, what: str, error: BaseException) -> None:
        self.fatal_calls.append((what, error))


async def ended(error: BaseException | None) -> asyncio.Task[None]:
    async def loop() -> None:
        if error is not None:
            raise error

    task = asyncio.create_task(loop())
    await asyncio.wait({task})
    return task


async def test_a_loop_failing_while_the_process_serves_is_fatal() -> None:
    fleet = Stopping(stopped=False)
    boom = RuntimeError("the store went away")
    _fatal_unless_cancelled(cast(Fleet, fleet), "pm polls", await ended(boom))
    assert fleet.fatal_calls == [("pm polls", boom)]


async def test_a_loop_failing_while_the_process_stops_is_a_debug_line_and_retrieved(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fleet = Stopping(stopped=True)
    caplog.set_level(logging.DEBUG)
    task = await ended(RuntimeError("client closed"))
    _fatal_unless_cancelled(cast(Fleet, fleet), "pm polls", task)
    assert fleet.fatal_calls == []
    lines = [r for r in caplog.records if "pm polls ended while the process stops" in r.message]
    assert [r.levelno for r in lines] == [logging.DEBUG]
    del task
    gc.collect()  # an exception never retrieved would be logged (at ERROR) as the task goes
    assert not [r for r in caplog.records if "never retrieved" in r.message]


@pytest.mark.parametrize("stopped", [False, True])
async def test_a_loop_that_ended_well_or_was_cancelled_is_nothing(stopped: bool) -> None:
    fleet = Stopping(stopped=stopped)
    _fatal_unless_cancelled(cast(Fleet, fleet), "loop", await ended(None))
    cancelled = asyncio.create_task(asyncio.sleep(60))
    cancelled.cancel()
    await asyncio.wait({cancelled})
    _fatal_unless_cancelled(cast(Fleet, fleet), "loop", cancelled)
    assert fleet.fatal_calls == []


async def test_a_loop_that_swallowed_its_cancel_is_cancelled_again_and_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    swallowed = asyncio.Event()

    async def read() -> None:  # as 3.11's wait_for does when the read completes with the cancel
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            swallowed.set()

    async def loop() -> None:
        while True:
            await read()
            await asyncio.sleep(60)  # the next round, as if never told to stop

    task = asyncio.create_task(loop(), name="the polls")
    await asyncio.sleep(0)  # started: the cancel reaches it inside its read
    caplog.set_level(logging.WARNING)
    await end_loops([task], within_s=30, again_s=0.05)
    assert swallowed.is_set() and task.cancelled()
    assert not caplog.records


async def test_a_loop_that_holds_every_cancel_is_named_with_its_await_and_the_stop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cancels, released = 0, False

    async def read_that_holds_a_cancel() -> None:
        nonlocal cancels
        while not released:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancels += 1  # a library that swallows every cancel

    async def loop() -> None:
        await read_that_holds_a_cancel()

    quick = asyncio.create_task(asyncio.sleep(60), name="the quick loop")
    stuck = asyncio.create_task(loop(), name="the stuck loop")
    await asyncio.sleep(0)  # both started: the cancel reaches them inside their awaits
    caplog.set_level(logging.WARNING)
    await end_loops([quick, stuck], within_s=0.2, again_s=0.05)
    try:
        assert quick.cancelled() and cancels >= 2 and not stuck.done()
        [line] = [r.getMessage() for r in caplog.records]
        assert line.startswith("the stuck loop did not end within 0.2 s of its cancel, at ")
        assert "<locals>.loop (" in line and "<locals>.read_that_holds_a_cancel (" in line
        assert line.endswith(")") and "> sleep (" in line
    finally:
        released = True  # the next cancel ends it
        stuck.cancel()
        await asyncio.wait({stuck})


async def test_no_loops_end_at_once() -> None:
    await within(end_loops([]), timeout_s=1, what="no loops to end")
