"""Live subscriptions over HTTP: ``GET /v1/{type}/{id}/subscribe`` as Server-Sent Events or a
WebSocket, each message an event exactly as ``/events`` returns it.

The subscription logic is ``workers.roles.read.live``; this module speaks the two transports, holds
the connection limits, counts, and closes every connection when the process drains.
``after_version`` (query) or ``Last-Event-ID`` (header, which wins: a browser's EventSource
sends it on reconnect) says where to start; the SSE ``id`` of each event is its version.

A connection ends when its credential does (the bearer token's ``exp`` plus the leeway, or the
token a ticket was bought with): between two batches, so what was given out was written, with
the position to resume from (SSE ``event: credential_expired``; WebSocket a JSON message, then
close code 4401).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Protocol

import orjson
from aiohttp import WSMsgType, web

from topics.envelope import Event, encode
from topics.errors import EventfleetError, Forbidden, InvalidInput
from workers import tracing
from workers.http.live.connections import Connection, Connections
from workers.http.live.push import Outbox, Sink
from workers.http.live.shared import SharedEvents
from workers.http.queries import failure
from workers.http.routes import check_aggregate, int_param
from workers.http.tickets import register_tickets
from workers.metrics import LiveMetrics, create_live_metrics
from workers.ports import AggregateRef
from workers.roles.read.live import (
    AggregateSubscription,
    Limiter,
    LiveLimits,
    SlowSubscriber,
    TooManySubscriptions,
    TypeSubscription,
    parse_position,
)
from workers.runtime.answers import Answer, error
from workers.runtime.door.auth import credential_expiry, json_response
from workers.runtime.fleet import Fleet

log = logging.getLogger(__name__)
SSE = "text/event-stream"
WS_TRY_AGAIN_LATER = 1013
WS_INTERNAL_ERROR = 1011
WS_CREDENTIAL_EXPIRED = 4401
"""The close code of a WebSocket whose credential expired (4000-4999 are the application's)."""


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


def close_reason(resume: Mapping[str, object]) -> bytes:
    """``credential_expired after_version=N``: a WebSocket close reason (123 bytes at most)."""
    reason = ("credential_expired " + " ".join(f"{k}={v}" for k, v in resume.items())).encode()
    return reason if len(reason) <= 123 else b"credential_expired"


def principal_of(fleet: Fleet, request: web.Request) -> str:
    """Who holds the connection, for the per-principal limit: the authenticated principal,
    or the client's address when the door is open (``EVENTFLEET_AUTH=none``)."""
    actor = fleet.door.actor(request)
    if actor is not None:
        return actor.principal
    return request.remote or "unknown"


def authorize_read(
    fleet: Fleet, request: web.Request, aggregate_type: str, aggregate_id: str | None
) -> None:
    """A subscription is a read: the domain's read rule for the caller, as on ``/events``.

    Raises Forbidden. (The door checks the routes it can place by their aggregate type; a
    room's socket names its aggregate only by its room id, so every live route asks here.)
    """
    actor = fleet.door.actor(request)
    domains = fleet.runtime.domains
    if actor is None or aggregate_type not in domains:
        return
    if not domains.get(aggregate_type).access.may_read(actor, aggregate_id):
        raise Forbidden(
            "read_refused", f"{actor.principal} may not read {aggregate_type} aggregates."
        )


def start_position(request: web.Request) -> int:
    """``Last-Event-ID`` when sent (a resume), else ``after_version``, else 0. A malformed
    ``after_version`` is refused even beside the header (a request is valid or refused whole)."""
    after = int_param(request.query, "after_version", 0, low=0, high=2**62) or 0
    resumed = request.headers.get("Last-Event-ID")
    if resumed is not None:
        return int_param({"Last-Event-ID": resumed.strip()}, "Last-Event-ID", 0,
                         low=0, high=2**62) or 0  # fmt: skip
    return after


def transport(request: web.Request) -> str:
    """``websocket`` for an upgrade, ``sse`` when the client accepts an event stream."""
    if request.headers.get("Upgrade", "").lower() == "websocket":
        return "websocket"
    accept = request.headers.get("Accept", "*/*")
    if SSE in accept or "*/*" in accept or "text/*" in accept:
        return "sse"
    raise NotAcceptable(
        f"this route streams events: send 'Accept: {SSE}' or open a WebSocket (Accept was "
        f"{accept!r})."
    )


Render = Callable[[Sequence[Event]], list[tuple[bytes, bytes]]]
"""What a subscriber gets for a batch of events: ``(SSE id, JSON message)`` pairs."""


class Subscription(Protocol):
    """What the transports serve: batches of events ([]: a quiet heartbeat interval)."""

    live: bool

    @property
    def resume(self) -> dict[str, object]: ...

    def batches(self) -> AsyncGenerator[list[Event], None]: ...


class NotAcceptable(InvalidInput):
    """Neither an event stream nor a WebSocket was asked for."""


def refusal(e: EventfleetError) -> Answer:
    if isinstance(e, Forbidden):
        return error(403, "forbidden", str(e), reason=e.reason)
    if isinstance(e, TooManySubscriptions):
        return error(429, "too_many_subscriptions", str(e), limit=e.limit, retry_after_s=5)
    if isinstance(e, NotAcceptable):
        return error(406, "not_acceptable", str(e))
    return failure(e)


class LiveServer:
    """Serves the live routes of one process."""

    def __init__(self, fleet: Fleet) -> None:
        self._fleet = fleet
        self._rt = fleet.runtime
        settings = self._rt.settings
        self.limits = LiveLimits(
            buffer_events=settings.live_buffer_events,
            heartbeat_s=settings.live_heartbeat_s,
            max_connections=settings.live_max_connections,
            max_per_principal=settings.live_max_per_principal,
        )
        self.limiter = Limiter(
            per_process=self.limits.max_connections, per_principal=self.limits.max_per_principal
        )
        self.metrics: LiveMetrics = create_live_metrics(self._rt.metrics.registry)
        for kind, via in (("aggregate", "sse"), ("aggregate", "websocket"), ("view", "sse"),
                          ("view", "websocket"), ("room", "websocket"), ("type", "sse"),
                          ("type", "websocket")):  # fmt: skip
            self.metrics.connections.labels(kind, via)
        self.connections = Connections(stuck_after_s=self.limits.heartbeat_s * 2)
        self.outbox = Outbox(self.metrics.latency)
        shredder = self._rt.shredder
        self.shared = SharedEvents(
            shredder.open_events, upcast=self._rt.domains.upcast, open_now=shredder.open_events_now
        )
        self._sent = {kind: self.metrics.events_sent.labels(kind)
                      for kind in ("aggregate", "view", "room", "type")}  # fmt: skip

    def register(self) -> None:
        """The generic route; register more specific ``/v1/<word>/{id}/subscribe`` ones first."""
        web_app = self._fleet.web_app
        web_app.router.add_get("/v1/{aggregate_type}/{aggregate_id}/subscribe", self.aggregate)
        web_app.router.add_get("/v1/{aggregate_type}/subscribe", self.whole_type)
        web_app.on_shutdown.append(self._close_all)
        register_tickets(self._fleet)  # how a browser opens these under jwt

    async def _close_all(self, _app: web.Application) -> None:
        """The process drains: end every live connection (clients resume elsewhere)."""
        self.connections.close_all()

    @contextlib.asynccontextmanager
    async def connection(
        self, kind: str, via: str, principal: str, request: web.Request
    ) -> AsyncIterator[Connection]:
        """One open connection: counted against the limits (TooManySubscriptions past one),
        in the gauge, ended when its client leaves or stops reading, and when the process
        drains."""
        try:
            self.limiter.acquire(principal)
        except TooManySubscriptions as e:
            self.metrics.refused.labels(e.limit).inc()
            raise
        connection = self.connections.add(request)
        gauge = self.metrics.connections.labels(kind, via)
        gauge.inc()
        try:
            yield connection
        finally:
            gauge.dec()
            self.limiter.release(principal)
            self.connections.discard(connection)

    async def subscription(
        self, aggregate: AggregateRef, after_version: int, *, kind: str
    ) -> AggregateSubscription:
        """What readers see: upcast and opened by ``shared``, once per process."""
        return AggregateSubscription(
            feed=await self._rt.live_feed(),
            store=self._rt.events,
            aggregate=aggregate,
            after_version=after_version,
            limits=self.limits,
            open_events=self.shared.open,
            on_gap=self.metrics.gaps_filled.labels(kind).inc,
        )

    @property
    def max_message_bytes(self) -> int:
        return self._rt.settings.max_body_bytes

    async def aggregate(self, request: web.Request) -> web.StreamResponse:
        match = request.match_info
        try:
            ref = check_aggregate(match["aggregate_type"], match["aggregate_id"])
            self._rt.domains.get(ref[0])  # an unknown type is a 404 before anything streams
            after = start_position(request)
            authorize_read(self._fleet, request, *ref)
            via = transport(request)
            principal = principal_of(self._fleet, request)
        except Forbidden as e:
            return self._fleet.door.forbidden(e)
        except EventfleetError as e:
            return json_response(refusal(e))
        try:
            async with self.connection("aggregate", via, principal, request) as connection:
                subscription = await self.subscription(ref, after, kind="aggregate")
                return await self.stream(request, connection, subscription, via)
        except TooManySubscriptions as e:
            return json_response(refusal(e), headers={"Retry-After": "5"})

    async def whole_type(self, request: web.Request) -> web.StreamResponse:
        """``GET /v1/{type}/subscribe?after=<partition>:<offset>,...``: every stored event of a
        type, from a position per partition of events.stored; each SSE id is the position
        after its event, so ``Last-Event-ID`` resumes."""
        aggregate_type = request.match_info["aggregate_type"]
        try:
            check_aggregate(aggregate_type, "all")
            self._rt.domains.get(aggregate_type)
            raw = request.headers.get("Last-Event-ID", request.query.get("after", ""))
            after = parse_position(raw)
            authorize_read(self._fleet, request, aggregate_type, None)
            via = transport(request)
            principal = principal_of(self._fleet, request)
        except Forbidden as e:
            return self._fleet.door.forbidden(e)
        except EventfleetError as e:
            return json_response(refusal(e))
        subscription = TypeSubscription(
            tail=self._rt.adapters.stream,
            topic=self._rt.names.stored,
            aggregate_type=aggregate_type,
            after=after,
            limits=self.limits,
            upcast=self._rt.domains.upcast,
            open_events=self._rt.shredder.open_events,
        )

        def render(events: Sequence[Event]) -> list[tuple[bytes, bytes]]:
            return [(subscription.tokens[e.id].encode(), encode(e)) for e in events]

        try:
            async with self.connection("type", via, principal, request) as connection:
                return await self.stream(
                    request, connection, subscription, via, kind="type", render=render
                )
        except TooManySubscriptions as e:
            return json_response(refusal(e), headers={"Retry-After": "5"})

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
        request: web.Request,
        connection: Connection,
        subscription: Subscription,
        via: str,
        *,
        kind: str = "aggregate",
        render: Render | None = None,
    ) -> web.StreamResponse:
        """Serve ``subscription`` over ``via``, each event rendered as ``(version, JSON)``;
        without ``render``, as ``/events`` has it, shared by the process's subscribers, and an
        aggregate subscription's live events written as they are heard (its ``push``)."""
        pushes = render is None and isinstance(subscription, AggregateSubscription)
        render = render or self.shared.render
        if via == "websocket":
            return await self._websocket(request, connection, subscription, kind, render, pushes)
        return await self._sse(request, connection, subscription, kind, render, pushes)

    async def _sse(
        self,
        request: web.Request,
        connection: Connection,
        subscription: Subscription,
        kind: str,
        render: Render,
        pushes: bool,
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": f"{SSE}; charset=utf-8",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",  # proxies must not hold the stream back
            }
        )
        await response.prepare(request)
        batches = subscription.batches()
        sink = None
        try:
            await connection.write(response.write(b"retry: 1000\n\n"))
            if pushes and isinstance(subscription, AggregateSubscription):
                sink = subscription.push = connection.sink = self._sink(
                    request, kind, response=response
                )
            async for batch in Expiring(batches, credential_expiry(request)):
                if not batch:
                    await connection.write(response.write(b": heartbeat\n\n"))
                    continue
                await connection.write(response.write(b"".join(
                    b"id: %s\ndata: %s\n\n" % item for item in render(batch)
                )))  # fmt: skip
                self.sent(kind, subscription, batch)
        except CredentialExpired as e:
            connection.close_sink()  # what was pushed goes first: it is given out
            resume = subscription.resume
            last_id = str(next(iter(resume.values()))).encode()
            with contextlib.suppress(Exception):
                frame = b"event: credential_expired\nid: %s\ndata: %s\n\n" % (
                    last_id,
                    orjson.dumps(expired_notice(e, resume)),
                )
                await connection.write(response.write(frame))
        except SlowSubscriber as e:
            self.metrics.slow_closes.labels(kind).inc()
            notice = {"error": "slow_client", "message": str(e), **subscription.resume}
            with contextlib.suppress(Exception):
                notice_frame = b"event: slow_client\ndata: " + orjson.dumps(notice) + b"\n\n"
                await connection.write(response.write(notice_frame))
        except EventfleetError as e:
            with contextlib.suppress(Exception):
                body = {**refusal(e).body, **subscription.resume}
                error_frame = b"event: error\ndata: " + orjson.dumps(body) + b"\n\n"
                await connection.write(response.write(error_frame))
        except (ConnectionError, TimeoutError):
            pass  # the client left or stopped reading: it resumes with Last-Event-ID
        finally:
            await batches.aclose()
            if sink is not None:
                sink.close()  # before the response's end
        return response

    def _sink(
        self, request: web.Request, kind: str, *, ws: web.WebSocketResponse | None = None,
        response: web.StreamResponse | None = None,
    ) -> Sink | None:  # fmt: skip
        """Live events pushed straight to the connection: SSE chunks of the response's body
        (its headers are out), or WebSocket text frames (not when the client negotiated
        compression). None when the connection cannot take them so."""
        transport = request.transport
        if transport is None or (ws is not None and ws.compress):
            return None
        if response is not None and response.compression:
            return None
        chunked = response is not None and (
            response.headers.get("Transfer-Encoding", "").lower() == "chunked"
        )
        return Sink(
            transport,
            outbox=self.outbox,
            ready=self.shared.ready,
            counted=self._sent[kind],
            websocket=ws is not None,
            chunked=chunked,
            is_closed=(lambda: ws.closed) if ws is not None else (lambda: False),
        )

    async def _websocket(
        self,
        request: web.Request,
        connection: Connection,
        subscription: Subscription,
        kind: str,
        render: Render,
        pushes: bool,
    ) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=float(self.limits.heartbeat_s))
        await ws.prepare(request)
        sink = None
        if pushes and isinstance(subscription, AggregateSubscription):
            sink = subscription.push = connection.sink = self._sink(request, kind, ws=ws)
        writer = asyncio.create_task(self._ws_write(ws, connection, subscription, kind, render))
        try:
            async for message in ws:  # control frames are handled while reading
                if message.type == WSMsgType.ERROR:
                    break
        finally:
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
            if sink is not None:
                sink.close()  # before the close frame
            await ws.close()
        return ws

    async def _ws_write(
        self,
        ws: web.WebSocketResponse,
        connection: Connection,
        subscription: Subscription,
        kind: str,
        render: Render,
    ) -> None:
        batches = subscription.batches()
        try:
            async for batch in Expiring(batches, credential_expiry(connection.request)):
                for _, data in render(batch):
                    await connection.write(ws.send_frame(data, WSMsgType.TEXT))
                self.sent(kind, subscription, batch)
        except CredentialExpired as e:
            connection.close_sink()
            resume = subscription.resume
            with contextlib.suppress(Exception):
                last = orjson.dumps(expired_notice(e, resume))
                await connection.write(ws.send_frame(last, WSMsgType.TEXT))
            await ws.close(code=WS_CREDENTIAL_EXPIRED, message=close_reason(resume))
        except SlowSubscriber as e:
            self.metrics.slow_closes.labels(kind).inc()
            notice = {"error": "slow_client", "message": str(e), **subscription.resume}
            with contextlib.suppress(Exception):
                await connection.write(ws.send_frame(orjson.dumps(notice), WSMsgType.TEXT))
            connection.close_sink()
            await ws.close(code=WS_TRY_AGAIN_LATER, message=b"slow_client")
        except EventfleetError as e:
            with contextlib.suppress(Exception):
                body = {**refusal(e).body, **subscription.resume}
                await connection.write(ws.send_frame(orjson.dumps(body), WSMsgType.TEXT))
            connection.close_sink()
            await ws.close(code=WS_TRY_AGAIN_LATER, message=b"error")
        except (ConnectionError, TimeoutError):
            connection.close_sink()
            await ws.close()
        except Exception:
            # Whatever ends the writer ends the connection: left open, its client would wait
            # on a socket nobody writes to (the reader answers pings) instead of resuming.
            log.exception("live: a %s subscription failed; its WebSocket is closed", kind)
            connection.close_sink()
            await ws.close(code=WS_INTERNAL_ERROR, message=b"error")
        finally:
            await batches.aclose()
