"""The open live connections of a process, watched by one task instead of a timer per write.

A live connection waits on its subscription most of the time; its client may leave meanwhile
(an SSE handler hears of it only when it next writes) or stop reading (a write then waits for
the socket's buffer to drain, forever). One sweep a second ends both: a connection whose
client left is cancelled, one whose write has waited longer than ``stuck_after_s`` is aborted
(its write raises ConnectionResetError); both release their limits at once. At the drain,
every connection is cancelled. A connection ended so is marked ``ended``: its route ends it
quietly (``LiveServer.connection``), as a client that left.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from workers.http.edge.request import Request


class Sink(Protocol):
    """What was pushed to a connection and not yet written (``workers.http.live.push``)."""

    def flush(self) -> None: ...

    def close(self) -> None: ...


class Connection:
    """One open connection: its handler's task, its request, since when it writes, and what
    was pushed to it and goes before anything its task writes."""

    __slots__ = ("answered", "ended", "request", "sink", "task", "writing_since")

    def __init__(self, request: Request, task: asyncio.Task[object] | None) -> None:
        self.request = request
        self.task = task
        self.writing_since: float | None = None
        self.sink: Sink | None = None
        self.answered = False
        """Its answer began (the stream's head, the WebSocket's acceptance)."""
        self.ended = False
        """Cancelled by the sweep or the drain (not by anything else)."""

    def end(self) -> None:
        """Cancel its task: the client left, or the process drains."""
        self.ended = True
        if self.task is not None:
            self.task.cancel()

    async def write(self, writing: Awaitable[None]) -> None:
        """Await one write (after what was pushed), watched: past ``stuck_after_s`` the
        connection is aborted."""
        if self.sink is not None:
            self.sink.flush()
        self.writing_since = time.monotonic()
        try:
            await writing
        finally:
            self.writing_since = None

    def close_sink(self) -> None:
        """Write what was pushed, then take no more pushes (before the connection ends)."""
        if self.sink is not None:
            self.sink.close()

    def gone(self) -> bool:
        """The client closed the connection (or it was lost)."""
        transport = self.request.transport
        return transport is None or transport.is_closing()


class Connections:
    """Every open live connection of a process, swept every ``every_s``."""

    def __init__(
        self,
        *,
        stuck_after_s: float,
        every_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stuck_after_s = stuck_after_s
        self._every_s = every_s
        self._clock = clock
        self._open: set[Connection] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self.ended = 0
        """Connections the sweep ended (a client gone, or a write stuck)."""

    def add(self, request: Request) -> Connection:
        """The current task's connection, watched from now on."""
        connection = Connection(request, asyncio.current_task())
        self._open.add(connection)
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.create_task(self._sweep(), name="live-connections")
        return connection

    def discard(self, connection: Connection) -> None:
        self._open.discard(connection)

    def __len__(self) -> int:
        return len(self._open)

    def close_all(self) -> None:
        """End every connection (the process drains); their clients resume elsewhere."""
        for connection in tuple(self._open):
            connection.end()
        if self._sweeper is not None:
            self._sweeper.cancel()

    async def _sweep(self) -> None:
        while self._open:
            await asyncio.sleep(self._every_s)
            self.sweep()
        self._sweeper = None

    def sweep(self) -> None:
        """End the connections whose client left or whose write is stuck."""
        now = self._clock()
        for connection in tuple(self._open):
            since = connection.writing_since
            if since is not None and now - since > self._stuck_after_s:
                transport = connection.request.transport
                if transport is not None:
                    transport.abort()  # the stuck write raises; the handler ends
                self.ended += 1
                self._open.discard(connection)
            elif connection.gone() and connection.task is not None:
                connection.end()
                self.ended += 1
                self._open.discard(connection)
