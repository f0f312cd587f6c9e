"""Live events written to a connection as they are heard, without a task switch, and coalesced:
what one connection gets within ``LINGER_S`` (a burst the feed read meanwhile) goes out in one
write.

A ``Sink`` is an aggregate subscription's ``push`` (``workers.roles.read.live``): it takes an event
when the process can make it ready without waiting (``SharedEvents.ready``) and the socket's
buffer, with what it already holds for this turn, is under the transport's high-water mark,
the bound a write would wait on. Otherwise it refuses, and the subscription's batches carry
the event through the bounded buffer. Its frames go before anything the connection's task
writes (``flush``) and before its end (``close``).

A delivery costs the sink a list append: the frames are the process's, made once per event
(``Shared``), and the ``Outbox`` observes each event's latency once per turn for all the
connections that got it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from topics.envelope import Event
from workers import tracing
from workers.http.live.shared import Shared
from workers.metric_kinds import LoopCount, LoopHistogram

LINGER_S = 0.002
"""How long pushed frames wait for more before they are written. A turn of the event loop holds
what one read of the feed brought (64 KB, ~1 message per room per read at 100 rooms); in a
burst, the turns of two milliseconds go out in one write per connection instead of one each:
a write is most of a delivery's cost."""


class Outbox:
    """Every sink of a process with frames pushed, written ``linger_s`` after the first (0: once
    the turn's callbacks ran); and the events they took, whose delivery latency it observes
    once per event and flush."""

    def __init__(self, latency: LoopHistogram | None = None, *, linger_s: float = LINGER_S) -> None:
        self._latency = latency
        self._linger_s = linger_s
        self._dirty: list[Sink] = []
        self._taken: list[Shared] = []
        self._scheduled = False

    def mark(self, sink: Sink) -> None:
        self._dirty.append(sink)
        if not self._scheduled:
            self._scheduled = True
            loop = asyncio.get_running_loop()
            if self._linger_s > 0:
                loop.call_later(self._linger_s, self.flush)
            else:
                loop.call_soon(self.flush)

    def took(self, entry: Shared) -> None:
        """``entry`` was pushed to its first sink since the last flush."""
        self._taken.append(entry)

    def flush(self) -> None:
        self._scheduled = False
        dirty, self._dirty = self._dirty, []
        for sink in dirty:
            sink.flush()
        taken, self._taken = self._taken, []
        now, latency, traced = time.time(), self._latency, tracing.enabled()
        for entry in taken:
            written, entry.pushed = entry.pushed, 0
            if not written:
                continue  # every connection it was pushed to was gone
            made = entry.made()
            if latency is not None:
                latency.observe(max(0.0, now - made), written)
            trace_id = entry.event.metadata.trace_id
            if traced and trace_id is not None:
                for _ in range(written):
                    tracing.delivered(trace_id, entry.event.id, made, "push")


class Sink:
    """One connection's pushed events: SSE chunks (``websocket`` False) or WebSocket frames."""

    __slots__ = (
        "_chunked",
        "_closed",
        "_counted",
        "_entries",
        "_high",
        "_outbox",
        "_ready",
        "_room",
        "_size",
        "_transport",
        "_websocket",
        "is_closed",
    )

    def __init__(
        self,
        transport: asyncio.Transport,
        *,
        outbox: Outbox,
        ready: Callable[[Event], Shared | None],
        counted: LoopCount,
        websocket: bool = False,
        chunked: bool = True,
        is_closed: Callable[[], bool] = lambda: False,
    ) -> None:
        self._transport = transport
        self._outbox = outbox
        self._ready = ready
        self._counted = counted
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
        entries = self._entries
        if not entries:  # the first this turn: what the socket may still take
            transport = self._transport
            if transport.is_closing():
                return False
            self._room = self._high - transport.get_write_buffer_size()
        frame = entry.websocket if self._websocket else entry.sse  # made by the first sink
        if frame is None:
            frame = entry.websocket_frame() if self._websocket else entry.sse_frame()
        size = self._size + len(frame)
        if size > self._room:
            return False
        if not entries:
            self._outbox.mark(self)
        entries.append(entry)
        self._size = size
        entry.pushed += 1
        if entry.pushed == 1:
            self._outbox.took(entry)
        return True

    def flush(self) -> None:
        """Write what this turn pushed, in one write (dropped if the client is gone, or the
        WebSocket closed meanwhile: it resumes from the last event it read)."""
        entries, self._entries, self._size = self._entries, [], 0
        if not entries:
            return
        if self._transport.is_closing() or self.is_closed():
            for entry in entries:
                entry.pushed -= 1  # not delivered: not counted
            return
        if self._websocket:
            data = b"".join([e.websocket_frame() for e in entries])
        elif len(entries) == 1:
            data = entries[0].sse_frame(chunked=self._chunked)
        else:
            body = b"".join([e.sse_frame() for e in entries])
            data = b"%x\r\n%s\r\n" % (len(body), body) if self._chunked else body
        self._transport.write(data)
        self._counted.value += len(entries)

    def close(self) -> None:
        """Write what is pushed and take nothing more: the connection ends."""
        self.flush()
        self._closed = True
