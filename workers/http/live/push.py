"""Live events written to a connection as they are heard, without a task switch, and coalesced:
what one connection gets within one turn of the event loop (a burst the feed read at once)
goes out in one write.

A ``Sink`` is an aggregate subscription's ``push`` (``workers.roles.live``): it takes an event
when the process can make it ready without waiting (``SharedEvents.ready``) and the socket's
buffer, with what it already holds for this turn, is under the transport's high-water mark,
the bound a write would wait on. Otherwise it refuses, and the subscription's batches carry
the event through the bounded buffer. Its frames go before anything the connection's task
writes (``flush``) and before its end (``close``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from topics.envelope import Event
from workers import tracing
from workers.http.live.shared import Shared
from workers.metrics import LoopCount, LoopHistogram


class Outbox:
    """Every sink of a process with frames this turn, written once the turn's callbacks ran."""

    def __init__(self) -> None:
        self._dirty: list[Sink] = []
        self._scheduled = False

    def mark(self, sink: Sink) -> None:
        self._dirty.append(sink)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        dirty, self._dirty = self._dirty, []
        for sink in dirty:
            sink.flush()


class Sink:
    """One connection's pushed events: SSE chunks (``websocket`` False) or WebSocket frames."""

    __slots__ = ("_chunked", "_closed", "_counted", "_entries", "_high", "_latency", "_outbox",
                 "_ready", "_room", "_size", "_transport", "_websocket", "is_closed")  # fmt: skip

    def __init__(
        self,
        transport: asyncio.Transport,
        *,
        outbox: Outbox,
        ready: Callable[[Event], Shared | None],
        counted: LoopCount,
        latency: LoopHistogram,
        websocket: bool = False,
        chunked: bool = True,
        is_closed: Callable[[], bool] = lambda: False,
    ) -> None:
        self._transport = transport
        self._outbox = outbox
        self._ready = ready
        self._counted = counted
        self._latency = latency
        self._websocket = websocket
        self._chunked = chunked
        self.is_closed = is_closed  # a WebSocket closed: nothing may follow its close frame
        self._high = transport.get_write_buffer_limits()[1]
        self._entries: list[Shared] = []
        self._size = 0
        self._room = 0  # what the socket may take this turn, beyond what it holds
        self._closed = False

    def __call__(self, event: Event) -> bool:
        if self._closed:
            return False
        entry = self._ready(event)
        if entry is None:
            return False
        frame = entry.websocket_frame() if self._websocket else entry.sse_frame(chunked=False)
        if not self._entries:  # the first this turn: what the socket may still take
            transport = self._transport
            if transport.is_closing():
                return False
            self._room = self._high - transport.get_write_buffer_size()
        if self._size + len(frame) > self._room:
            return False
        if not self._entries:
            self._outbox.mark(self)
        self._entries.append(entry)
        self._size += len(frame)
        return True

    def flush(self) -> None:
        """Write what this turn pushed, in one write (dropped if the client is gone, or the
        WebSocket closed meanwhile: it resumes from the last event it read)."""
        entries, self._entries, self._size = self._entries, [], 0
        if not entries or self._transport.is_closing() or self.is_closed():
            return
        if self._websocket:
            data = b"".join(e.websocket_frame() for e in entries)
        elif len(entries) == 1:
            data = entries[0].sse_frame(chunked=self._chunked)
        else:
            body = b"".join(e.sse_frame(chunked=False) for e in entries)
            data = b"%x\r\n%s\r\n" % (len(body), body) if self._chunked else body
        self._transport.write(data)
        self._counted.inc(len(entries))
        now, observe = time.time(), self._latency.observe
        for entry in entries:
            observe(max(0.0, now - entry.made()))
        if tracing.enabled():
            for entry in entries:
                if entry.event.metadata.trace_id is not None:
                    tracing.delivered(entry.event.metadata.trace_id, entry.event.id, entry.made(), "push")

    def close(self) -> None:
        """Write what is pushed and take nothing more: the connection ends."""
        self.flush()
        self._closed = True
