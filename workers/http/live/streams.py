"""Live subscriptions over HTTP: ``GET /v1/{type}/{id}/subscribe`` as Server-Sent Events or a
WebSocket, each message an event exactly as ``/events`` returns it, and ``GET
/v1/{type}/subscribe``, every stored event of a type from a position per partition.

The subscription logic is ``workers.roles.read.live``, the writing ``transports``; this module
holds the routes, the connection limits (``429`` with ``Retry-After``), the read rule
(``403``), counts, and ends every connection when the process drains. ``after_version``
(query) or ``Last-Event-ID`` (header, which wins: a browser's EventSource sends it on
reconnect) says where to start; the SSE ``id`` of each event is its version.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Protocol

from topics.envelope import READ_VERSION_MAX, Event, encode
from topics.errors import Forbidden, HistoryGone, InvalidInput
from workers.http import declared
from workers.http.declared import SubscribeQuery, TypeSubscribeQuery
from workers.http.edge.request import Request
from workers.http.edge.responses import Response, json_response
from workers.http.edge.routes import Api
from workers.http.edge.streaming import STREAMED
from workers.http.live.connections import Connection, Connections
from workers.http.live.shared import SharedEvents
from workers.http.live.transports import SSE, NotAcceptable, Transports
from workers.http.tickets import register_tickets
from workers.metrics import create_live_metrics
from workers.ports import AggregateRef
from workers.roles.history import check_resumable
from workers.roles.read.live import (
    AggregateSubscription,
    Limiter,
    LiveLimits,
    TooManySubscriptions,
    TypeSubscription,
    parse_position,
)
from workers.runtime.answers import error, failure
from workers.runtime.door.incoming import Incoming
from workers.runtime.fleet import Fleet

_SHUTTING_DOWN = "this worker is draining; reconnect (another worker serves it)."


class OnStop(Protocol):
    """What the process's HTTP server runs first when it stops (``FleetHttp.on_stop``)."""

    on_stop: list[Callable[[], object]]


def principal_of(fleet: Fleet, request: Incoming) -> str:
    """Who holds the connection, for the per-principal limit: the authenticated principal,
    or the client's address when the door is open (``EVENTFLEET_AUTH=none``)."""
    actor = fleet.door.actor(request)
    if actor is not None:
        return actor.principal
    return request.remote or "unknown"


def authorize_read(
    fleet: Fleet, request: Incoming, aggregate_type: str, aggregate_id: str | None
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


def whole_number(what: str, raw: str) -> int:
    """``raw`` as a version (0 to READ_VERSION_MAX); InvalidInput naming ``what``."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19 or int(raw) > READ_VERSION_MAX:
        raise InvalidInput(
            f"{what}={raw[:40]!r} must be a whole number from 0 to {READ_VERSION_MAX}."
        )
    return int(raw)


def start_position(request: Request, after_version: int | None = None) -> int:
    """``Last-Event-ID`` when sent (a resume), else ``after_version`` (the route's bound query,
    or the request's own), else 0. A malformed ``after_version`` is refused even beside the
    header (a request is valid or refused whole)."""
    if after_version is None:
        raw = request.query.get("after_version", "")
        after_version = whole_number("query parameter after_version", raw) if raw else 0
    resumed = request.headers.get("Last-Event-ID")
    if resumed is not None:
        resumed = resumed.strip()
        return whole_number("header Last-Event-ID", resumed) if resumed else 0
    return after_version


def check_transport(request: Request) -> None:
    """A WebSocket, or a client that accepts an event stream; else NotAcceptable."""
    if request.websocket:
        return
    accept = request.headers.get("Accept", "*/*")
    if SSE in accept or "*/*" in accept or "text/*" in accept:
        return
    raise NotAcceptable(
        f"this route streams events: send 'Accept: {SSE}' or open a WebSocket (Accept was "
        f"{accept!r})."
    )


def via(request: Request) -> str:
    return "websocket" if request.websocket else "sse"


class LiveServer(Transports):
    """Serves the live routes of one process."""

    def __init__(self, fleet: Fleet, http: OnStop) -> None:
        self._fleet = fleet
        self._rt = rt = fleet.runtime
        settings = rt.settings
        limits = LiveLimits(
            buffer_events=settings.live_buffer_events,
            heartbeat_s=settings.live_heartbeat_s,
            max_connections=settings.live_max_connections,
            max_per_principal=settings.live_max_per_principal,
        )
        shared = SharedEvents(
            rt.shredder.open_events, upcast=rt.domains.upcast, open_now=rt.shredder.open_events_now
        )
        super().__init__(
            limits=limits, metrics=create_live_metrics(rt.metrics.registry), shared=shared
        )
        self.limiter = Limiter(
            per_process=limits.max_connections, per_principal=limits.max_per_principal
        )
        for kind, transport in (
            ("aggregate", "sse"),
            ("aggregate", "websocket"),
            ("view", "sse"),
            ("view", "websocket"),
            ("room", "websocket"),
            ("type", "sse"),
            ("type", "websocket"),
            ("global", "sse"),
            ("global", "websocket"),
        ):
            self.metrics.connections.labels(kind, transport)
        self.connections = Connections(stuck_after_s=limits.heartbeat_s * 2)
        # The process drains: end every live connection first (clients resume elsewhere).
        http.on_stop.append(self.connections.close_all)

    def register(self, api: Api) -> None:
        """The generic routes; register more specific ``/v1/<word>/{id}/subscribe`` ones first."""
        api.bind(declared.SUBSCRIBE, self.aggregate)
        api.bind(declared.SUBSCRIBE_TYPE, self.whole_type)
        register_tickets(self._fleet, api)  # how a browser opens these under jwt

    @contextlib.asynccontextmanager
    async def connection(
        self, kind: str, principal: str, request: Request
    ) -> AsyncIterator[Connection]:
        """One open connection: counted against the limits (TooManySubscriptions past one),
        in the gauge, ended when its client leaves or stops reading, and when the process
        drains (quietly: the route then answers what ``ended`` says)."""
        try:
            self.limiter.acquire(principal)
        except TooManySubscriptions as e:
            self.metrics.refused.labels(e.limit).inc()
            raise
        connection = self.connections.add(request)
        gauge = self.metrics.connections.labels(kind, via(request))
        gauge.inc()
        try:
            yield connection
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not connection.ended or task is None:
                raise
            task.uncancel()  # ours: the connection is over, nothing else is
        finally:
            gauge.dec()
            self.limiter.release(principal)
            self.connections.discard(connection)

    def ended(self, connection: Connection | None) -> Response:
        """What a route answers once the sweep or the drain ended its connection."""
        if connection is not None and connection.answered:
            return STREAMED
        return json_response(error(503, "shutting_down", _SHUTTING_DOWN))

    async def subscription(
        self, aggregate: AggregateRef, after_version: int, *, kind: str
    ) -> AggregateSubscription:
        """What readers see: upcast and opened by ``shared``, once per process. HistoryGone
        (answered 410 before anything streams) when ``after_version`` is in front of a hole in
        history, so a client resuming there (a browser's EventSource with its Last-Event-ID)
        is refused instead of streaming the same notice again."""
        await check_resumable(self._rt.events, aggregate, after_version)
        return AggregateSubscription(
            feed=await self._rt.live_feed(),
            store=self._rt.events,
            aggregate=aggregate,
            after_version=after_version,
            limits=self.limits,
            open_events=self.shared.open,
            on_gap=self.metrics.gaps_filled.labels(kind).inc,
        )

    async def aggregate(self, request: Request, query: SubscribeQuery) -> Response:
        ref = (request.params["aggregate_type"], request.params["aggregate_id"])
        self._rt.domains.get(ref[0])  # an unknown type is a 404 before anything streams
        after = start_position(request, query.after_version)
        authorize_read(self._fleet, request, *ref)
        check_transport(request)
        principal = principal_of(self._fleet, request)
        connection = None
        try:
            async with self.connection("aggregate", principal, request) as connection:
                subscription = await self.subscription(ref, after, kind="aggregate")
                return await self.stream(request, connection, subscription)
        except (TooManySubscriptions, HistoryGone) as e:
            return json_response(failure(e))
        return self.ended(connection)

    async def whole_type(self, request: Request, query: TypeSubscribeQuery) -> Response:
        """``GET /v1/{type}/subscribe?after=<partition>:<offset>,...``: every stored event of a
        type, from a position per partition of events.stored; each SSE id is the position
        after its event, so ``Last-Event-ID`` resumes."""
        aggregate_type = request.params["aggregate_type"]
        self._rt.domains.get(aggregate_type)
        after = parse_position(request.headers.get("Last-Event-ID", query.after))
        authorize_read(self._fleet, request, aggregate_type, None)
        check_transport(request)
        principal = principal_of(self._fleet, request)
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

        connection = None
        try:
            async with self.connection("type", principal, request) as connection:
                return await self.stream(
                    request, connection, subscription, kind="type", render=render
                )
        except TooManySubscriptions as e:
            return json_response(failure(e))
        return self.ended(connection)
