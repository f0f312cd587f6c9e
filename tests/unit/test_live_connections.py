"""The open live connections of a process: one sweep ends a connection whose client left
(cancelled) and one whose write waits past its bound (aborted), leaves the others, and the
drain cancels them all."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.clock import Clock
from workers.http.live.connections import Connections


class FakeTransport:
    def __init__(self) -> None:
        self.closing = False
        self.aborted = False

    def is_closing(self) -> bool:
        return self.closing

    def abort(self) -> None:
        self.aborted = self.closing = True


class FakeRequest:
    def __init__(self) -> None:
        self.transport: FakeTransport | None = FakeTransport()


async def held(connections: Connections, request: Any, opened: asyncio.Event) -> None:
    """A handler: holds its connection until cancelled, as a live route waits on events."""
    connections.add(request)
    opened.set()
    await asyncio.Event().wait()


async def open_one(connections: Connections) -> tuple[FakeRequest, asyncio.Task[None]]:
    request, opened = FakeRequest(), asyncio.Event()
    task = asyncio.create_task(held(connections, request, opened))
    await opened.wait()
    return request, task


async def test_a_connection_whose_client_left_is_cancelled_and_the_others_are_left() -> None:
    connections = Connections(stuck_after_s=30, every_s=3600, clock=Clock(100.0))
    left, left_task = await open_one(connections)
    closed, closed_task = await open_one(connections)
    _, kept_task = await open_one(connections)
    left.transport = None  # the connection was lost
    assert closed.transport is not None
    closed.transport.closing = True  # the client closed it
    connections.sweep()
    await asyncio.gather(left_task, closed_task, return_exceptions=True)
    assert left_task.cancelled() and closed_task.cancelled() and not kept_task.done()
    assert connections.ended == 2 and len(connections) == 1
    connections.sweep()  # once: an ended connection is not ended again
    assert connections.ended == 2
    connections.close_all()
    await asyncio.gather(kept_task, return_exceptions=True)
    assert kept_task.cancelled()


async def test_a_write_waiting_past_its_bound_aborts_the_connection() -> None:
    clock = Clock(100.0)
    connections = Connections(stuck_after_s=30, every_s=3600, clock=clock)
    stuck, stuck_task = await open_one(connections)
    slow, slow_task = await open_one(connections)
    idle, idle_task = await open_one(connections)
    by_request = {id(c.request): c for c in connections._open}
    stuck_connection, slow_connection = by_request[id(stuck)], by_request[id(slow)]
    stuck_connection.writing_since = clock.now - 31  # waits for the socket to drain
    slow_connection.writing_since = clock.now - 29  # slow, but within its bound
    connections.sweep()
    assert stuck.transport is not None and stuck.transport.aborted  # its write raises now
    assert slow.transport is not None and not slow.transport.aborted
    assert idle.transport is not None and not idle.transport.aborted
    assert connections.ended == 1 and len(connections) == 2
    connections.close_all()
    stuck_task.cancel()  # the fake's abort raises nothing in its handler: end it here
    await asyncio.gather(stuck_task, slow_task, idle_task, return_exceptions=True)
    assert slow_task.cancelled() and idle_task.cancelled()


async def test_a_watched_write_says_since_when_it_waits_and_forgets_it_once_done() -> None:
    connections = Connections(stuck_after_s=30, every_s=3600)
    _, task = await open_one(connections)
    [connection] = connections._open
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    writing = asyncio.create_task(connection.write(gate))
    await asyncio.sleep(0)
    assert connection.writing_since is not None
    gate.set_result(None)
    await writing
    assert connection.writing_since is None
    connections.close_all()
    await asyncio.gather(task, return_exceptions=True)
