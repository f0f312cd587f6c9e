"""A subscription written on a connection: Server-Sent Events or a WebSocket, each message an
event (``render``: as ``/events`` returns it, unless a route renders its own), and how a
connection ends.

A connection ends when its credential does (the bearer token's ``exp`` plus the leeway, or the
token a ticket was bought with): between two batches, so what was given out was written, with
the position to resume from (SSE ``event: credential_expired``; WebSocket a JSON message, then
close code 4401, the position in the close reason). A client that falls too far behind gets
``slow_client`` (WebSocket: close 1013), a failure of ours ``error`` (1013), and a WebSocket
whose writer dies is closed 1011 (its client resumes instead of waiting on a silent socket).
A catch-up that reaches a hole in history (versions an archive lost) gives out the events
before it, then ends with ``history_compacted`` (SSE ``event: history_compacted``; WebSocket a
JSON message, then close code 4410), naming ``whole_from``, the first version after the hole,
and ``after_version``, the last one given out: it never jumps the hole.

An aggregate subscription's live events are pushed straight to the connection's socket
(``workers.http.live.push``) when the edge gives its wire (``Request.wire``); every other write
goes through the edge's stream or WebSocket, watched by the connection (``Connection.write``:
a write that waits on a client that does not read is ended by the sweep).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Protocol

import orjson

from topics.envelope import Event
from topics.errors import EventfleetError, HistoryGone, InvalidInput
from workers import tracing
from workers.http.edge.request import Request
from workers.http.edge.responses import Response
from workers.http.edge.streaming import STREAMED, WebSocket, stream
from workers.http.live.connections import Connection
from workers.http.live.push import Outbox, Sink
from workers.http.live.shared import SharedEvents
from workers.metric_kinds import LoopCount
from workers.metrics import LiveMetrics
from workers.roles.read.live import AggregateSubscription, LiveLimits, SlowSubscriber
from workers.runtime.answers import failure

log = logging.getLogger(__name__)
SSE = "text/event-stream"
SSE_HEADERS = {
    "Content-Type": f"{SSE}; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # proxies must not hold the stream back
}
WS_TRY_AGAIN_LATER = 1013
WS_INTERNAL_ERROR = 1011
WS_CREDENTIAL_EXPIRED = 4401
"""The close code of a WebSocket whose credential expired (4000-4999 are the application's)."""
WS_HISTORY_COMPACTED = 4410
"""The close code of a WebSocket whose catch-up reached a hole in history (410's code)."""
KINDS = ("aggregate", "view", "room", "type", "global")


class CredentialExpired(EventfleetError):
    """The connection's credential expired: its client signs in again and resumes."""


class Expiring:
    """A subscription's batches until ``deadline`` (seconds since the epoch; None: never).

    At the deadline, while the next batch is awaited, ``CredentialExpired``: a batch handed out
    is written whole first, and the subscription's ``resume`` names what was given out.
    """

    def __init__(self, batches: AsyncGenerator[list[Event], None], deadline: float | None) -> None:
        self._batches = batches
        self._deadline = deadline

    def __aiter__(self) -> Expiring:
        return self

    async def __anext__(self) -> list[Event]:
        deadline = self._deadline
        if deadline is None:
            return await self._batches.__anext__()
        remaining = deadline - time.time()
        if remaining <= 0:
            raise CredentialExpired(_expired_at(deadline))
        timeout = asyncio.timeout(remaining)
        try:
            async with timeout:
                return await self._batches.__anext__()
        except TimeoutError:
            if timeout.expired():
                raise CredentialExpired(_expired_at(deadline)) from None
            raise


def _expired_at(deadline: float) -> str:
    at = datetime.fromtimestamp(deadline, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return (
        f"the credential of this connection expired at {at}; sign in again (a new token, or a "
        "new ticket from POST /v1/tickets) and reconnect from the position named here."
    )


def expired_notice(e: CredentialExpired, resume: dict[str, object]) -> dict[str, object]:
    """The last message of a connection whose credential expired: why, and where to resume."""
    return {"error": "credential_expired", "message": str(e), **resume}


def compacted_notice(e: HistoryGone, resume: Mapping[str, object]) -> dict[str, object]:
    """The last message of a subscription whose catch-up reached a hole: ``whole_from`` and the
    position given out (``after_version``), never a jump."""
    return {**failure(e).body, **resume}


def close_reason(resume: Mapping[str, object]) -> bytes:
    """``credential_expired after_version=N``: a WebSocket close reason (123 bytes at most)."""
    reason = ("credential_expired " + " ".join(f"{k}={v}" for k, v in resume.items())).encode()
    return reason if len(reason) <= 123 else b"credential_expired"


class NotAcceptable(InvalidInput):
    """Neither an event stream nor a WebSocket was asked for."""

    code = "not_acceptable"


Render = Callable[[Sequence[Event]], list[tuple[bytes, bytes]]]
"""What a subscriber gets for a batch of events: ``(SSE id, JSON message)`` pairs."""


class Subscription(Protocol):
    """What the transports serve: batches of events ([]: a quiet heartbeat interval)."""

    live: bool

    @property
    def resume(self) -> dict[str, object]: ...

    def batches(self) -> AsyncGenerator[list[Event], None]: ...


def _positioned(render: Render) -> Render:
    """``render`` whose messages carry their SSE id: ``{"position": id, "event": message}``
    (the id is base64url: nothing in it to escape)."""

    def positioned(events: Sequence[Event]) -> list[tuple[bytes, bytes]]:
        return [
            (id_, b'{"position":"%s","event":%s}' % (id_, data)) for id_, data in render(events)
        ]

    return positioned


class Transports:
    """Writes subscriptions to their connections, counts what was sent, and pushes the live
    events of aggregate subscriptions through one outbox per process."""

    def __init__(self, *, limits: LiveLimits, metrics: LiveMetrics, shared: SharedEvents) -> None:
        self.limits = limits
        self.metrics = metrics
        self.shared = shared
        self.outbox = Outbox(metrics.latency)
        self._sent: dict[str, LoopCount] = {k: metrics.events_sent.labels(k) for k in KINDS}

    def sent(self, kind: str, subscription: Subscription, events: Sequence[Event]) -> None:
        counter = self._sent.get(kind) or self.metrics.events_sent.labels(kind)
        counter.inc(len(events))
        if subscription.live:
            now = time.time()
            for event in events:
                entry = self.shared.shared(event)
                made = entry.made() if entry is not None else event.occurred_at.timestamp()
                self.metrics.latency.observe(max(0.0, now - made))
                if tracing.enabled() and event.metadata.trace_id is not None:
                    tracing.delivered(event.metadata.trace_id, event.id, made, kind)

    async def stream(
        self,
        request: Request,
        connection: Connection,
        subscription: Subscription,
        *,
        kind: str = "aggregate",
        render: Render | None = None,
        positioned: bool = False,
    ) -> Response:
        """Serve ``subscription`` on ``request``'s WebSocket, else as an event stream; without
        ``render``, each event as ``/events`` has it, shared by the process's subscribers, and
        an aggregate subscription's live events written as they are heard (its ``push``).
        ``positioned``: each WebSocket message is ``{"position": SSE id, "event": message}``,
        so a WebSocket client holds its position as an SSE client does."""
        pushes = render is None and isinstance(subscription, AggregateSubscription)
        render = render or self.shared.render
        if request.websocket:
            if positioned:
                render = _positioned(render)
            return await self._websocket(request, connection, subscription, kind, render, pushes)
        return await self._sse(request, connection, subscription, kind, render, pushes)

    def _sink(self, request: Request, kind: str) -> Sink | None:
        """Live events pushed straight to the connection's socket: SSE chunks of the response's
        body (its head is out) or WebSocket text frames (accepted). None when the edge gives no
        wire (a HEAD request, a server that is not uvicorn)."""
        wire = request.wire()
        if wire is None:
            return None
        return Sink(
            wire.transport,
            outbox=self.outbox,
            ready=self.shared.ready,
            counted=self._sent[kind],
            websocket=wire.websocket,
            chunked=wire.chunked,
            is_closed=wire.ended,
        )

    async def _sse(
        self,
        request: Request,
        connection: Connection,
        subscription: Subscription,
        kind: str,
        render: Render,
        pushes: bool,
    ) -> Response:
        out = await stream(request, SSE_HEADERS)
        connection.answered = True
        batches = subscription.batches()
        sink = None
        try:
            await connection.write(out.write(b"retry: 1000\n\n"))
            if pushes and isinstance(subscription, AggregateSubscription):
                sink = subscription.push = connection.sink = self._sink(request, kind)
            async for batch in Expiring(batches, request.expires):
                if not batch:
                    await connection.write(out.write(b": heartbeat\n\n"))
                    continue
                await connection.write(
                    out.write(b"".join(b"id: %s\ndata: %s\n\n" % item for item in render(batch)))
                )
                self.sent(kind, subscription, batch)
        except CredentialExpired as e:
            connection.close_sink()  # what was pushed goes first: it is given out
            resume = subscription.resume
            last_id = str(next(iter(resume.values()))).encode()
            body = orjson.dumps(expired_notice(e, resume))
            frame = b"event: credential_expired\nid: %s\ndata: %s\n\n" % (last_id, body)
            with contextlib.suppress(Exception):
                await connection.write(out.write(frame))
        except SlowSubscriber as e:
            self.metrics.slow_closes.labels(kind).inc()
            notice = {"error": "slow_client", "message": str(e), **subscription.resume}
            with contextlib.suppress(Exception):
                notice_frame = b"event: slow_client\ndata: " + orjson.dumps(notice) + b"\n\n"
                await connection.write(out.write(notice_frame))
        except HistoryGone as e:
            connection.close_sink()
            body = orjson.dumps(compacted_notice(e, subscription.resume))
            with contextlib.suppress(Exception):
                await connection.write(out.write(b"event: history_compacted\ndata: %s\n\n" % body))
        except EventfleetError as e:
            with contextlib.suppress(Exception):
                body = orjson.dumps({**failure(e).body, **subscription.resume})
                await connection.write(out.write(b"event: error\ndata: " + body + b"\n\n"))
        except (ConnectionError, TimeoutError):
            pass  # the client left or stopped reading: it resumes with Last-Event-ID
        finally:
            await batches.aclose()
            if sink is not None:
                sink.close()  # before the response's end
            await out.end()
        return STREAMED

    async def _websocket(
        self,
        request: Request,
        connection: Connection,
        subscription: Subscription,
        kind: str,
        render: Render,
        pushes: bool,
    ) -> Response:
        ws = WebSocket(request)
        try:
            await ws.accept()
        except ConnectionError:
            return STREAMED  # the client left during the handshake
        connection.answered = True
        sink = None
        if pushes and isinstance(subscription, AggregateSubscription):
            sink = subscription.push = connection.sink = self._sink(request, kind)
        writer = asyncio.create_task(self._ws_write(ws, connection, subscription, kind, render))
        try:
            async for _ in ws:  # the server answers pings; nothing the client sends is read
                pass
        finally:
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
            if sink is not None:
                sink.close()  # before the close frame
            await ws.close()
        return STREAMED

    async def _ws_write(
        self,
        ws: WebSocket,
        connection: Connection,
        subscription: Subscription,
        kind: str,
        render: Render,
    ) -> None:
        batches = subscription.batches()
        try:
            async for batch in Expiring(batches, connection.request.expires):
                for _, data in render(batch):
                    await connection.write(ws.send_text(data))
                self.sent(kind, subscription, batch)
        except CredentialExpired as e:
            connection.close_sink()
            resume = subscription.resume
            with contextlib.suppress(Exception):
                await connection.write(ws.send_text(orjson.dumps(expired_notice(e, resume))))
            await ws.close(WS_CREDENTIAL_EXPIRED, close_reason(resume))
        except SlowSubscriber as e:
            self.metrics.slow_closes.labels(kind).inc()
            notice = {"error": "slow_client", "message": str(e), **subscription.resume}
            with contextlib.suppress(Exception):
                await connection.write(ws.send_text(orjson.dumps(notice)))
            connection.close_sink()
            await ws.close(WS_TRY_AGAIN_LATER, "slow_client")
        except HistoryGone as e:
            connection.close_sink()
            with contextlib.suppress(Exception):
                notice = compacted_notice(e, subscription.resume)
                await connection.write(ws.send_text(orjson.dumps(notice)))
            await ws.close(WS_HISTORY_COMPACTED, f"history_compacted whole_from={e.whole_from}")
        except EventfleetError as e:
            with contextlib.suppress(Exception):
                body = {**failure(e).body, **subscription.resume}
                await connection.write(ws.send_text(orjson.dumps(body)))
            connection.close_sink()
            await ws.close(WS_TRY_AGAIN_LATER, "error")
        except (ConnectionError, TimeoutError):
            connection.close_sink()
            await ws.close()
        except Exception:
            # Whatever ends the writer ends the connection: left open, its client would wait
            # on a socket nobody writes to (the server answers pings) instead of resuming.
            log.exception("live: a %s subscription failed; its WebSocket is closed", kind)
            connection.close_sink()
            await ws.close(WS_INTERNAL_ERROR, "error")
        finally:
            await batches.aclose()
