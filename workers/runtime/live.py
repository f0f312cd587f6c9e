"""Live subscriptions over HTTP: ``GET /v1/{type}/{id}/subscribe`` as Server-Sent Events or a
WebSocket, each message an event exactly as ``/events`` returns it.

The subscription logic is ``workers.roles.live``; this module speaks the two transports, holds
the connection limits, counts, and closes every connection when the process drains.
``after_version`` (query) or ``Last-Event-ID`` (header, which wins: a browser's EventSource
sends it on reconnect) says where to start; the SSE ``id`` of each event is its version.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from aiohttp import WSMsgType, web

from topics.envelope import Event, encode
from topics.errors import EventfleetError, Forbidden, InvalidInput
from workers.metrics import LiveMetrics, create_live_metrics
from workers.ports import AggregateRef
from workers.roles.live import (
    AggregateSubscription,
    Limiter,
    LiveLimits,
    SlowSubscriber,
    TooManySubscriptions,
    TypeSubscription,
    parse_position,
)
from workers.runtime.answers import Answer, error
from workers.runtime.fleet import Fleet
from workers.runtime.http import check_aggregate, int_param
from workers.runtime.http_errors import json_response
from workers.runtime.queries import failure

log = logging.getLogger(__name__)
SSE = "text/event-stream"
WS_TRY_AGAIN_LATER = 1013


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
    """``Last-Event-ID`` when sent (a resume), else ``after_version``, else 0."""
    resumed = request.headers.get("Last-Event-ID")
    if resumed is not None:
        return int_param({"Last-Event-ID": resumed.strip()}, "Last-Event-ID", 0,
                         low=0, high=2**62) or 0  # fmt: skip
    return int_param(request.query, "after_version", 0, low=0, high=2**62) or 0


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


class SharedEvents:
    """Events opened and encoded once per process, for every subscriber that gets them.

    A room's event reaches each of its subscribers; opening its personal fields and encoding
    it once, not once per connection, is most of what a delivery costs. An entry lives
    ``ttl_s`` (far inside the key cache's erasure bound, ``EVENTFLEET_KEY_CACHE_TTL_S``) and
    at most ``size`` are kept.
    """

    def __init__(
        self,
        open_events: Callable[[Sequence[Event]], Awaitable[list[Event]]],
        *,
        ttl_s: float = 1.0,
        size: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._open_events = open_events
        self._ttl_s = ttl_s
        self._size = size
        self._clock = clock
        self._entries: OrderedDict[tuple[str, int | None], _Shared] = OrderedDict()

    async def open(self, events: Sequence[Event]) -> list[Event]:
        """``events`` with their data opened, as ``open_events`` gives them."""
        now = self._clock()
        while self._entries and next(iter(self._entries.values())).until <= now:
            self._entries.popitem(last=False)  # the oldest expire first
        entries = self._entries
        missing = [e for e in events if (e.id, e.version) not in entries]
        if missing:
            until = now + self._ttl_s
            for event in await self._open_events(missing):
                entries[(event.id, event.version)] = _Shared(event, until)
            while len(entries) > self._size:
                entries.popitem(last=False)
        return [entries[(e.id, e.version)].event if (e.id, e.version) in entries else e
                for e in events]  # fmt: skip

    def render(self, events: Sequence[Event]) -> list[tuple[bytes, bytes]]:
        """Each event exactly as ``/events`` returns it, its id its version; encoded once while
        it is shared."""
        rendered = []
        for event in events:
            shared = self._entries.get((event.id, event.version))
            if shared is None or shared.event is not event:
                rendered.append((b"%d" % (event.version or 0), encode(event)))
                continue
            if shared.json is None:
                shared.json = encode(event)
            rendered.append((b"%d" % (event.version or 0), shared.json))
        return rendered


@dataclass(slots=True)
class _Shared:
    event: Event
    until: float
    json: bytes | None = None


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
        self._open: set[asyncio.Task[Any]] = set()
        self.shared = SharedEvents(self._rt.shredder.open_events)
        self._sent = {kind: self.metrics.events_sent.labels(kind)
                      for kind in ("aggregate", "view", "room", "type")}  # fmt: skip

    def register(self) -> None:
        """The generic route; register more specific ``/v1/<word>/{id}/subscribe`` ones first."""
        web_app: web.Application = self._fleet.app.web.web_app  # type: ignore[attr-defined]
        web_app.router.add_get("/v1/{aggregate_type}/{aggregate_id}/subscribe", self.aggregate)
        web_app.router.add_get("/v1/{aggregate_type}/subscribe", self.whole_type)
        web_app.on_shutdown.append(self._close_all)

    async def _close_all(self, _app: web.Application) -> None:
        """The process drains: end every live connection (clients resume elsewhere)."""
        for task in tuple(self._open):
            task.cancel()

    @contextlib.asynccontextmanager
    async def connection(self, kind: str, via: str, principal: str) -> AsyncIterator[None]:
        """One open connection: counted against the limits (TooManySubscriptions past one),
        in the gauge, and closed when the process drains."""
        try:
            self.limiter.acquire(principal)
        except TooManySubscriptions as e:
            self.metrics.refused.labels(e.limit).inc()
            raise
        task = asyncio.current_task()
        if task is not None:
            self._open.add(task)
        gauge = self.metrics.connections.labels(kind, via)
        gauge.inc()
        try:
            yield
        finally:
            gauge.dec()
            self.limiter.release(principal)
            if task is not None:
                self._open.discard(task)

    async def subscription(
        self, aggregate: AggregateRef, after_version: int, *, kind: str
    ) -> AggregateSubscription:
        return AggregateSubscription(
            feed=await self._rt.live_feed(),
            store=self._rt.events,
            aggregate=aggregate,
            after_version=after_version,
            limits=self.limits,
            upcast=self._rt.domains.upcast,
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
            async with self.connection("aggregate", via, principal):
                subscription = await self.subscription(ref, after, kind="aggregate")
                return await self.stream(request, subscription, via)
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
            async with self.connection("type", via, principal):
                return await self.stream(request, subscription, via, kind="type", render=render)
        except TooManySubscriptions as e:
            return json_response(refusal(e), headers={"Retry-After": "5"})

    def sent(self, kind: str, subscription: Subscription, events: Sequence[Event]) -> None:
        counter = self._sent.get(kind) or self.metrics.events_sent.labels(kind)
        counter.inc(len(events))
        if subscription.live:
            now = time.time()
            for event in events:
                self.metrics.latency.observe(max(0.0, now - event.occurred_at.timestamp()))

    async def _write(self, response: web.StreamResponse, data: bytes) -> None:
        """One write, bounded: a client that takes nothing for two heartbeats is gone or stuck."""
        async with asyncio.timeout(self.limits.heartbeat_s * 2):
            await response.write(data)

    async def stream(
        self,
        request: web.Request,
        subscription: Subscription,
        via: str,
        *,
        kind: str = "aggregate",
        render: Render | None = None,
    ) -> web.StreamResponse:
        """Serve ``subscription`` over ``via``, each event rendered as ``(version, JSON)``."""
        render = render or self.shared.render
        if via == "websocket":
            return await self._websocket(request, subscription, kind, render)
        return await self._sse(request, subscription, kind, render)

    async def _sse(
        self, request: web.Request, subscription: Subscription, kind: str, render: Render
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
        try:
            await self._write(response, b"retry: 1000\n\n")
            async for batch in batches:
                if not batch:
                    await self._write(response, b": heartbeat\n\n")
                    continue
                await self._write(response, b"".join(
                    b"id: %s\ndata: %s\n\n" % item for item in render(batch)
                ))  # fmt: skip
                self.sent(kind, subscription, batch)
        except SlowSubscriber as e:
            self.metrics.slow_closes.labels(kind).inc()
            notice = {"error": "slow_client", "message": str(e), **subscription.resume}
            with contextlib.suppress(Exception):
                await self._write(response, b"event: slow_client\ndata: " + orjson.dumps(notice)
                                  + b"\n\n")  # fmt: skip
        except EventfleetError as e:
            with contextlib.suppress(Exception):
                body = {**refusal(e).body, **subscription.resume}
                await self._write(response, b"event: error\ndata: " + orjson.dumps(body) + b"\n\n")
        except (ConnectionError, TimeoutError):
            pass  # the client left or stopped reading: it resumes with Last-Event-ID
        finally:
            await batches.aclose()
        return response

    async def _websocket(
        self, request: web.Request, subscription: Subscription, kind: str, render: Render
    ) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=float(self.limits.heartbeat_s))
        await ws.prepare(request)
        writer = asyncio.create_task(self._ws_write(ws, subscription, kind, render))
        try:
            async for message in ws:  # control frames are handled while reading
                if message.type == WSMsgType.ERROR:
                    break
        finally:
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
            await ws.close()
        return ws

    async def _ws_write(
        self,
        ws: web.WebSocketResponse,
        subscription: Subscription,
        kind: str,
        render: Render,
    ) -> None:
        batches = subscription.batches()
        try:
            async for batch in batches:
                for _, data in render(batch):
                    await asyncio.wait_for(ws.send_str(data.decode()), self.limits.heartbeat_s * 2)
                self.sent(kind, subscription, batch)
        except SlowSubscriber as e:
            self.metrics.slow_closes.labels(kind).inc()
            notice = {"error": "slow_client", "message": str(e), **subscription.resume}
            with contextlib.suppress(Exception):
                await ws.send_str(orjson.dumps(notice).decode())
            await ws.close(code=WS_TRY_AGAIN_LATER, message=b"slow_client")
        except EventfleetError as e:
            with contextlib.suppress(Exception):
                body = {**refusal(e).body, **subscription.resume}
                await ws.send_str(orjson.dumps(body).decode())
            await ws.close(code=WS_TRY_AGAIN_LATER, message=b"error")
        except (ConnectionError, TimeoutError):
            await ws.close()
        finally:
            await batches.aclose()
