"""The global read over HTTP: ``GET /v1/events``, every stored event across aggregates from a
position, a page at a time, and ``GET /v1/events/subscribe``, the same followed live (SSE or
WebSocket). The logic is ``workers.roles.read.global_read``; here the query becomes a filter and
the caller's read rule, and the answer its bytes.

A page is ``{"events": [...], "positions": [...], "more": …, "next": …}`` with ``Link: <…>;
rel="next"`` while more exist; each SSE message's id is the position after its event, so
``Last-Event-ID`` (which wins over ``after``) resumes after the last event a client took. A
WebSocket message is ``{"position": …, "event": …}``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import orjson

from topics.envelope import Event, encode
from workers.http import declared
from workers.http.declared import GlobalEventsQuery, GlobalSubscribeQuery
from workers.http.edge.request import Request
from workers.http.edge.responses import Response
from workers.http.edge.routes import Api
from workers.http.live.streams import LiveServer, check_transport, principal_of
from workers.roles.read.global_read import GlobalFilter, GlobalRead, choose, read_rule
from workers.roles.read.paging import next_link
from workers.runtime.fleet import Fleet
from workers.runtime.settings import Settings

__all__ = ["global_reader", "register_global_read"]


def global_reader(fleet: Fleet) -> tuple[GlobalRead, Callable[[], Awaitable[None]]]:
    """The process's global read, and what closes its readers when the server stops."""
    rt = fleet.runtime
    settings: Settings = rt.settings
    pages = rt.adapters.stream.pages(readers=settings.global_read_readers)
    reader = GlobalRead(
        pages=pages,
        tail=rt.adapters.stream,
        topic=rt.names.stored,
        key=rt.stores.position_key,
        domains=rt.domains,
        open_events=rt.shredder.open_events,
        scan=settings.global_read_scan,
    )
    return reader, pages.stop


def register_global_read(fleet: Fleet, api: Api, live: LiveServer, reader: GlobalRead) -> None:
    """``GET /v1/events`` and ``GET /v1/events/subscribe`` on ``api``."""
    domains = fleet.runtime.domains

    def filtered(query: GlobalSubscribeQuery) -> GlobalFilter:
        return choose(
            domains,
            aggregate_types=query.aggregate_types(),
            event_types=query.event_types(),
            id_prefix=query.id_prefix,
        )

    async def events(request: Request, query: GlobalEventsQuery) -> Response:
        page = await reader.page(
            after=query.after,
            limit=query.limit,
            keep=filtered(query),
            may_read=read_rule(domains, fleet.door.actor(request)),
        )
        # The envelopes are spliced in as they are: no decode/encode round trip per event.
        body = (
            b'{"events":['
            + b",".join(encode(e) for e in page.events)
            + b'],"positions":'
            + orjson.dumps(page.positions)
            + b',"more":'
            + (b"true" if page.more else b"false")
            + b',"next":'
            + orjson.dumps(page.next)
            + b"}"
        )
        headers = {}
        if page.more:
            headers["Link"] = next_link(request.path, {"after": page.next, **query.filters()})
        return Response(body, headers=headers)

    async def subscribe(request: Request, query: GlobalSubscribeQuery) -> Response:
        resumed = (request.headers.get("Last-Event-ID") or "").strip()
        after = resumed or query.after
        keep = filtered(query)
        check_transport(request)
        principal = principal_of(fleet, request)
        may_read = read_rule(domains, fleet.door.actor(request))
        async with live.connection("global", principal, request) as connection:
            subscription = await reader.subscription(
                after=after, keep=keep, may_read=may_read, limits=live.limits
            )

            def render(batch: Sequence[Event]) -> list[tuple[bytes, bytes]]:
                return [(subscription.tokens[e.id].encode(), encode(e)) for e in batch]

            return await live.stream(
                request, connection, subscription, kind="global", render=render, positioned=True
            )
        return live.ended(connection)

    api.bind(declared.GLOBAL_EVENTS, events)
    api.bind(declared.GLOBAL_SUBSCRIBE, subscribe)
