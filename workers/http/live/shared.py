"""Events shared by every live subscriber of a process: upcast, opened and encoded once, and
their SSE and WebSocket frames made once, not once per connection.

A room's event reaches each of its subscribers; turning it into what a reader sees (its
current schema version, its personal fields opened) and into bytes is most of what a delivery
would cost if every connection did it. An entry lives ``ttl_s`` (far inside the key cache's
erasure bound, ``EVENTFLEET_KEY_CACHE_TTL_S``) and at most ``size`` are kept.
"""

from __future__ import annotations

import struct
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from topics.envelope import Event, encode


def _same(event: Event) -> Event:
    return event


@dataclass(slots=True)
class Shared:
    """One event as every subscriber of this process gets it, and its frames, made on demand."""

    event: Event
    until: float
    json: bytes | None = None
    sse: bytes | None = None
    sse_chunk: bytes | None = None
    websocket: bytes | None = None
    made_s: float | None = None
    pushed: int = 0
    """Connections it was pushed to since the outbox last counted (``workers.http.live.push``)."""

    def encoded(self) -> bytes:
        """The event exactly as ``/events`` returns it."""
        if self.json is None:
            self.json = encode(self.event)
        return self.json

    def sse_frame(self, *, chunked: bool = False) -> bytes:
        """The SSE message (``id: <version>``, ``data: <event>``), as one HTTP/1.1 chunk when
        ``chunked``."""
        if self.sse is None:
            self.sse = b"id: %d\ndata: %s\n\n" % (self.event.version or 0, self.encoded())
        if not chunked:
            return self.sse
        if self.sse_chunk is None:
            self.sse_chunk = b"%x\r\n%s\r\n" % (len(self.sse), self.sse)
        return self.sse_chunk

    def websocket_frame(self) -> bytes:
        """The event as one unmasked, uncompressed WebSocket text frame (RFC 6455, 5.2)."""
        if self.websocket is None:
            self.websocket = text_frame(self.encoded())
        return self.websocket

    def made(self) -> float:
        """When the event was made (its ``occurred_at``), in seconds since the epoch."""
        if self.made_s is None:
            self.made_s = self.event.occurred_at.timestamp()
        return self.made_s


def text_frame(payload: bytes) -> bytes:
    """A final, unmasked WebSocket text frame holding ``payload`` (what a server sends)."""
    size = len(payload)
    if size < 126:
        return struct.pack("!BB", 0x81, size) + payload
    if size < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, size) + payload
    return struct.pack("!BBQ", 0x81, 127, size) + payload


class SharedEvents:
    """Events made ready for readers once per process, for every subscriber that gets them.

    ``open_events`` opens personal fields (fetching keys it lacks); ``open_now``, when given,
    does the same without waiting, or answers None when a key must be fetched first: it lets
    ``ready`` serve a live event synchronously.
    """

    def __init__(
        self,
        open_events: Callable[[Sequence[Event]], Awaitable[list[Event]]],
        *,
        upcast: Callable[[Event], Event] = _same,
        open_now: Callable[[Sequence[Event]], list[Event] | None] | None = None,
        ttl_s: float = 1.0,
        size: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._open_events = open_events
        self._upcast = upcast
        self._open_now = open_now
        self._ttl_s = ttl_s
        self._size = size
        self._clock = clock
        self._entries: OrderedDict[tuple[str, int | None], Shared] = OrderedDict()
        # The event the feed is handing to every listener of its channel, and its entry: one
        # lookup per event, not per listener.
        self._last: tuple[Event, Shared] | None = None

    async def open(self, events: Sequence[Event]) -> list[Event]:
        """``events`` upcast and with their data opened, each made once while shared."""
        now = self._clock()
        self._expire(now)
        entries = self._entries
        missing = [e for e in events if (e.id, e.version) not in entries]
        made: dict[tuple[str, int | None], Event] = {}
        if missing:
            opened = await self._open_events([self._upcast(e) for e in missing])
            until = self._clock() + self._ttl_s
            for raw, event in zip(missing, opened, strict=True):
                made[(raw.id, raw.version)] = event
                self._put((raw.id, raw.version), Shared(event, until))
        out = []
        for e in events:
            key = (e.id, e.version)
            if key in made:
                out.append(made[key])
                continue
            entry = entries.get(key)  # shared before: the one instance every subscriber gets
            out.append(entry.event if entry is not None else (await self.open([e]))[0])
        return out

    def ready(self, event: Event) -> Shared | None:
        """``event`` as readers see it, without waiting: shared, or made now; None when that
        needs a key fetched (``open`` does it) or fails. Called while the feed dispatches an
        event to its listeners: it never raises."""
        now = self._clock()
        last = self._last
        if last is not None and last[0] is event and last[1].until > now:
            return last[1]
        key = (event.id, event.version)
        entry = self._entries.get(key)
        if entry is not None and entry.until > now:
            self._last = (event, entry)
            return entry
        if self._open_now is None:
            return None
        try:
            opened = self._open_now([self._upcast(event)])
        except Exception:  # an upcaster that fails: the subscription's own path meets it
            return None
        if opened is None:
            return None
        self._expire(now)
        entry = Shared(opened[0], now + self._ttl_s)
        self._put(key, entry)
        self._last = (event, entry)
        return entry

    def shared(self, event: Event) -> Shared | None:
        """The entry of ``event`` if it is the instance ``open`` or ``ready`` made."""
        entry = self._entries.get((event.id, event.version))
        return entry if entry is not None and entry.event is event else None

    def render(self, events: Sequence[Event]) -> list[tuple[bytes, bytes]]:
        """Each event exactly as ``/events`` returns it, its id its version; encoded once while
        it is shared."""
        rendered = []
        for event in events:
            entry = self.shared(event)
            json = encode(event) if entry is None else entry.encoded()
            rendered.append((b"%d" % (event.version or 0), json))
        return rendered

    def _expire(self, now: float) -> None:
        entries = self._entries
        while entries and next(iter(entries.values())).until <= now:
            entries.popitem(last=False)  # the oldest expire first

    def _put(self, key: tuple[str, int | None], entry: Shared) -> None:
        """Newest last, so the oldest expire first; at most ``size``."""
        entries = self._entries
        entries.pop(key, None)
        entries[key] = entry
        while len(entries) > self._size:
            entries.popitem(last=False)
