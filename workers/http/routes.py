"""HTTP views on Faust's web server: append, queries, health, readiness and metrics."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime

import orjson
from aiohttp import web
from faust.web import Response, View
from multidict import CIMultiDict
from prometheus_client import generate_latest
from prometheus_client.openmetrics import exposition as openmetrics

from snapshot_rules.queries import Query
from topics.envelope import AGGREGATE_ID_RE, AGGREGATE_TYPE_RE, Actor, encode, parse_utc
from topics.errors import EventfleetError, Forbidden, InvalidEnvelope, InvalidInput
from workers.http import errors as http_errors
from workers.http import traced as traced_http
from workers.http.bodies import json_body
from workers.http.console import register_console
from workers.http.console.html import SECURITY_HEADERS
from workers.http.contract import register_contract
from workers.http.probes import health_answer, ready_answer
from workers.http.queries import FleetQueries, answer_page, check_plus_signs, failure
from workers.http.ryw import Caller, ReadAfter, WriteWaiter
from workers.http.subjects import register_erase
from workers.metrics import create_ryw_metrics
from workers.roles.command.requests import parse_request
from workers.roles.outcomes import Refused
from workers.roles.read.paging import DEFAULT_PAGE, MAX_PAGE, next_link, read_page
from workers.runtime.answers import Answer, answer_bytes, error
from workers.runtime.door.auth import Handler, actor_of, json_response
from workers.runtime.door.identity import ANONYMOUS
from workers.runtime.fleet import Fleet

_DIGITS = re.compile(r"[0-9]{1,18}\Z")
PROMETHEUS_TEXT = "text/plain; version=0.0.4"  # aiohttp sets the charset itself
OPENMETRICS = "application/openmetrics-text"
OPENMETRICS_TEXT = OPENMETRICS + "; version=1.0.0"  # with exemplars; aiohttp adds the charset


def respond(view: View, answer: Answer) -> Response:
    return view.bytes(
        orjson.dumps(answer.body),
        content_type="application/json",
        status=answer.status,
        headers=retry_after(answer),
    )


def retry_after(answer: Answer) -> dict[str, str]:
    """``Retry-After`` of a ``429`` that names its ``retry_after_s``; else no header."""
    seconds = answer.body.get("retry_after_s") if answer.status == 429 else None
    return {"Retry-After": str(seconds)} if isinstance(seconds, int) else {}


def int_param(
    query: Mapping[str, str], name: str, default: int | None, *, low: int, high: int
) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    if not _DIGITS.match(raw):  # int() also takes '²', ' 7', '+7' and '1_000'
        raise InvalidInput(f"query parameter {name}={raw!r} must be a whole number.")
    value = int(raw)
    if not low <= value <= high:
        raise InvalidInput(f"query parameter {name}={value} must be between {low} and {high}.")
    return value


def time_param(query: Mapping[str, str], name: str) -> datetime | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    check_plus_signs({name: raw})
    try:
        return parse_utc(raw, name)
    except InvalidEnvelope as e:
        raise InvalidInput(f"query parameter {e}.") from e


def history_point(query: Mapping[str, str]) -> tuple[int | None, datetime | None]:
    """``at_version`` or ``as_of`` (or neither) for ``/state``; both at once is refused."""
    version = int_param(query, "at_version", None, low=1, high=2**62)
    as_of = time_param(query, "as_of")
    if version is not None and as_of is not None:
        raise InvalidInput(
            "give at_version or as_of, not both: at_version=N asks for the state after event N, "
            "as_of=T for the state at a moment; drop one of them."
        )
    return version, as_of


def _text_param(query: Mapping[str, str], name: str) -> str | None:
    raw = query.get(name)
    if raw is None:
        return None
    if not 0 < len(raw) <= 256:
        raise InvalidInput(f"query parameter {name} must be a string of 1 to 256 characters.")
    return raw


def check_aggregate(aggregate_type: str, aggregate_id: str) -> tuple[str, str]:
    if not AGGREGATE_TYPE_RE.match(aggregate_type):
        raise InvalidInput(
            f"aggregate type {aggregate_type!r} must match {AGGREGATE_TYPE_RE.pattern}."
        )
    if not AGGREGATE_ID_RE.match(aggregate_id):
        raise InvalidInput(f"aggregate id {aggregate_id!r} must match {AGGREGATE_ID_RE.pattern}.")
    return aggregate_type, aggregate_id


def no_events(aggregate_type: str, aggregate_id: str, as_of: datetime | None) -> Answer:
    if as_of is not None:
        message = (
            f"{aggregate_type} {aggregate_id} has no events at that point (as_of "
            f"{as_of.isoformat().replace('+00:00', 'Z')}); ask for a later as_of."
        )
    else:
        message = (
            f"{aggregate_type} {aggregate_id} has no events; check the id (an event answered "
            "202 is stored moments later)."
        )
    return error(404, "not_found", message)


def register_append(fleet: Fleet) -> None:
    """``POST /v1/{type}/{id}/events`` as a plain aiohttp route, the first in the table.

    The hot path of every command: it skips Faust's view dispatch, and the general middleware
    stack too. One middleware, first in the stack, sends it straight to a handler that does
    what that stack does, in the same order: refuse a repeated query parameter, the door (the
    cross-site check, who calls), JSON for any error. Every other route goes on as before.
    """
    commands, limit = fleet.runtime.commands, fleet.runtime.settings.max_body_bytes
    within_s = fleet.runtime.settings.body_timeout_s
    draining = error(503, "shutting_down", "this worker is draining; retry on another.")

    door = fleet.door

    async def append(request: web.Request) -> web.Response:
        if fleet.draining:
            return json_response(draining)
        with fleet.serving():
            try:
                body = await json_body(request, limit, within_s)
                match = request.match_info
                command = parse_request(
                    match["aggregate_type"], match["aggregate_id"], body, max_bytes=limit,
                    actor=door.actor(request),  # from the token only, never from the body
                )  # fmt: skip
            except EventfleetError as e:
                return json_response(failure(e))
            outcome = await commands.handle(command)
            if isinstance(outcome, Refused) and outcome.code == "forbidden":
                door.count_forbidden(str(outcome.details.get("reason", "domain_rule")))
            status, answer = answer_bytes(outcome)
            return web.Response(body=answer, status=status, headers=_JSON_HEADERS)

    web_app = fleet.web_app
    route = web_app.router.add_post("/v1/{aggregate_type}/{aggregate_id}/events", append)

    @web.middleware
    async def append_first(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.match_info.route is not route:
            return await handler(request)
        try:
            refused = http_errors.repeated_query(request) or await door.admit(request)
            if refused is not None:
                return refused
            return await append(request)
        except Forbidden as e:
            return door.forbidden(e)
        except ConnectionError:
            raise  # the client left: nobody to answer
        except Exception as e:
            return http_errors.json_error(request, e)

    # First but for tracing, whose span covers every request (workers.http.traced).
    web_app.middlewares.insert(web_app.middlewares.index(http_errors.json_errors), append_first)


_JSON_HEADERS = CIMultiDict({"Content-Type": "application/json", **SECURITY_HEADERS})
"""The headers of every append answer, built once (the console's security headers are set by
its response hook only where missing)."""


def register_views(fleet: Fleet) -> None:
    app, rt = fleet.app, fleet.runtime
    web_app = fleet.web_app
    http_errors.install(web_app)
    traced_http.install(web_app)
    fleet.door.install(web_app)
    fleet.door.authorize = read_access(fleet)

    if "commands" in fleet.roles:
        register_append(fleet)
    waiter = write_waiter(fleet)
    register_erase(fleet)

    @app.page("/v1/{aggregate_type}/{aggregate_id}/events")
    class Events(View):
        async def get(
            self, request: web.Request, aggregate_type: str, aggregate_id: str
        ) -> Response:
            try:
                ref = check_aggregate(aggregate_type, aggregate_id)
                await read_after(waiter, ref, request)
                after = int_param(request.query, "after_version", 0, low=0, high=2**62) or 0
                limit = int_param(request.query, "limit", DEFAULT_PAGE, low=1, high=MAX_PAGE)
                assert limit is not None
                page = await read_page(rt.events, ref, after_version=after, limit=limit)
                # clients see the current schema version
                events = await rt.shredder.open_events([rt.domains.upcast(e) for e in page.events])
                if not events and not await rt.events.heads([ref]):
                    rt.domains.get(aggregate_type)  # nothing stored: is the type itself unknown?
                    return respond(self, no_events(aggregate_type, aggregate_id, None))
            except EventfleetError as e:
                return respond(self, failure(e))
            # The envelope bytes are spliced in as they are: no decode/encode round trip per event.
            body = (
                b'{"events":['
                + b",".join(encode(e) for e in events)
                + b'],"more":'
                + (b"true" if page.more else b"false")
                + b',"next_after_version":'
                + str(page.next_after_version).encode()
                + b"}"
            )
            headers = {}
            if page.more:
                params: dict[str, str | int] = {
                    "after_version": page.next_after_version,
                    "limit": limit,
                }
                headers["Link"] = next_link(request.path, params)
            return self.bytes(body, content_type="application/json", headers=headers)

    @app.page("/v1/{aggregate_type}/{aggregate_id}/snapshot")
    class SnapshotView(View):
        async def get(
            self, request: web.Request, aggregate_type: str, aggregate_id: str
        ) -> Response:
            try:
                snapshot = await rt.snapshots.load(check_aggregate(aggregate_type, aggregate_id))
                if snapshot is None:
                    rt.domains.get(aggregate_type)  # nothing stored: is the type itself unknown?
            except EventfleetError as e:
                return respond(self, failure(e))
            if snapshot is None:
                message = (
                    f"{aggregate_type} {aggregate_id} has no snapshot yet; GET .../state "
                    "answers its state either way."
                )
                return respond(self, error(404, "not_found", message))
            try:
                state = await rt.shredder.open(snapshot.state)
            except EventfleetError as e:
                return respond(self, failure(e))
            body = {"version": snapshot.version, "state": state, "taken_at": snapshot.taken_at}
            return self.bytes(
                orjson.dumps(body, option=orjson.OPT_UTC_Z), content_type="application/json"
            )

    @app.page("/v1/{aggregate_type}/{aggregate_id}/state")
    class StateView(View):
        async def get(
            self, request: web.Request, aggregate_type: str, aggregate_id: str
        ) -> Response:
            try:
                ref = check_aggregate(aggregate_type, aggregate_id)
                domain = rt.domains.get(aggregate_type)
                version, as_of = history_point(request.query)
                await read_after(waiter, ref, request)
                if version is None and as_of is None:
                    folded = await rt.loader.latest(domain, aggregate_id)
                else:
                    folded = await rt.loader.exactly_at(
                        domain, aggregate_id, version=version, as_of=as_of
                    )
                if folded.version == 0:
                    return respond(self, no_events(aggregate_type, aggregate_id, as_of))
                state = await rt.shredder.open(folded.state)
            except EventfleetError as e:
                return respond(self, failure(e))
            return respond(self, Answer(200, {"version": folded.version, "state": state}))

    register_domain_queries(fleet, waiter)
    if "commands" in fleet.roles:
        outcomes = rt.outcomes

        @app.page("/v1/{aggregate_type}/{aggregate_id}/outcome")
        class Outcome(View):
            async def get(
                self, request: web.Request, aggregate_type: str, aggregate_id: str
            ) -> Response:
                try:
                    check_aggregate(aggregate_type, aggregate_id)
                    command_id = _text_param(request.query, "command_id")
                    event_id = _text_param(request.query, "event_id")
                    found = await outcomes.ask(
                        aggregate_type, aggregate_id, command_id=command_id, event_id=event_id,
                        actor=fleet.door.actor(request),  # a command id is its sender's own
                    )  # fmt: skip
                except EventfleetError as e:
                    return respond(self, failure(e))
                if found is not None:
                    return respond(self, Answer(200, found))
                what = "command" if command_id else "event"
                message = (
                    f"nothing is known of that {what} on {aggregate_type} {aggregate_id}: it was "
                    "never sent here, or the command memory forgot it (after EVENTFLEET_COMMAND_TTL_S)."
                )
                body = {"outcome": "none", "event_id": event_id, "command_id": command_id}
                return respond(self, error(404, "not_found", message, **body))

    @app.page("/healthz")
    class Health(View):
        async def get(self, request: web.Request) -> Response:
            return respond(self, health_answer(fleet, verbose="verbose" in request.query))

    @app.page("/readyz")
    class Ready(View):
        async def get(self, request: web.Request) -> Response:
            return respond(self, ready_answer(fleet))

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: web.Request) -> Response:
            fleet.refresh_gauges()
            if OPENMETRICS in request.headers.get("Accept", ""):  # with exemplars (traces)
                body: bytes = openmetrics.generate_latest(rt.metrics.registry)  # type: ignore[no-untyped-call]  # prometheus-client leaves its OpenMetrics exposition unannotated
                return self.bytes(body, content_type=OPENMETRICS_TEXT)
            return self.bytes(generate_latest(rt.metrics.registry), content_type=PROMETHEUS_TEXT)

    register_contract(fleet)  # /openapi.json and /v1/types (workers/http/contract.py)
    register_console(fleet)  # the operator console (workers/runtime/console), under /console


def read_access(fleet: Fleet) -> Callable[[web.Request, Actor], None]:
    """The read rule of the aggregate a GET names, resolved from its route's declaration: a
    domain query's ``aggregate_param``, else the ``{aggregate_type}/{aggregate_id}`` of the
    fleet's own routes. The rule sees None only for a route about no single aggregate (a
    whole type's subscription, a query declared ``aggregate_param=None``)."""
    domains = fleet.runtime.domains
    by_route = {
        query.path: (domain, query.aggregate_param)
        for domain in domains
        for query in domain.queries
    }

    def authorize(request: web.Request, actor: Actor) -> None:
        if request.method not in ("GET", "HEAD"):
            return  # appends are judged by the domain's send rules
        match = request.match_info
        declared = by_route.get(match.route.resource.canonical if match.route.resource else "")
        if declared is not None:
            domain, param = declared
            aggregate_id = None if param is None else match[param]
        else:
            aggregate_type = match.get("aggregate_type")
            if aggregate_type is None or aggregate_type not in domains:
                return  # not a domain's route (live chat routes ask the rule themselves)
            domain, aggregate_id = domains.get(aggregate_type), match.get("aggregate_id")
        if not domain.access.may_read(actor, aggregate_id):
            what = "aggregates" if aggregate_id is None else aggregate_id
            raise Forbidden("read_refused", f"{actor.principal} may not read {domain.name} {what}.")

    return authorize


def register_domain_queries(fleet: Fleet, waiter: WriteWaiter | None = None) -> None:
    """Serve every enabled domain's declared read routes (a disabled domain has none)."""
    rt = fleet.runtime
    views = {
        name: rt.views(projection.collection)
        for name, projection in rt.domains.projections().items()
    }
    context = FleetQueries(domains=rt.domains, loader=rt.loader, events=rt.events, views=views)
    waiter = waiter or write_waiter(fleet)
    for query in rt.domains.queries():
        _register_query(fleet, query, context, waiter)


def _register_query(fleet: Fleet, query: Query, context: FleetQueries, waiter: WriteWaiter) -> None:
    shredder = fleet.runtime.shredder

    @fleet.app.page(query.path)
    class DomainQuery(View):
        async def get(self, request: web.Request, **params: str) -> Response:
            found, next_page = await answer_page(
                query,
                context,
                params,
                request.query,
                waiter.serving(waiting_caller(request)),
                actor=fleet.door.actor(request),
            )
            if found.status < 300:  # a view or replayed state: its personal fields opened
                try:
                    found = Answer(found.status, await shredder.open(found.body))
                except EventfleetError as e:
                    found, next_page = failure(e), None
            headers = retry_after(found)
            if next_page is not None:
                headers["Link"] = next_link(request.path, dict(next_page))
            body = orjson.dumps(found.body)
            return self.bytes(
                body, content_type="application/json", status=found.status, headers=headers
            )


def write_waiter(fleet: Fleet) -> WriteWaiter:
    """What makes a read wait for its writes (``min_version``/``command_id`` + ``wait_ms``):
    one per process, so its bounds hold for every route."""
    rt = fleet.runtime
    settings = rt.settings
    return WriteWaiter(
        domains=rt.domains,
        events=rt.events,
        rejections=rt.stores.rejections,
        feed=rt.live_feed,  # woken by the appender's announcements, in any process
        safety_poll_s=settings.ryw_poll_ms / 1000,
        max_waiters=settings.ryw_max_waiters,
        max_per_principal=settings.ryw_max_waiters_per_principal,
        metrics=create_ryw_metrics(rt.metrics.registry),
    )


def waiting_caller(request: web.Request) -> Caller:
    """Whose bound a read's wait counts against, and how to tell that its client left."""
    actor = actor_of(request)

    def gone() -> bool:
        transport = request.transport
        return transport is None or transport.is_closing()

    return Caller(ANONYMOUS.principal if actor is None else actor.principal, gone)


async def read_after(waiter: WriteWaiter, ref: tuple[str, str], request: web.Request) -> None:
    """Wait until what the query names is stored (nothing named: return at once); a
    ``command_id`` is the caller's own (``command_scope``)."""
    after = ReadAfter.parse(request.query)
    if after is not None:
        caller = waiter.serving(waiting_caller(request))
        await caller.stored(ref, replace(after, actor=actor_of(request)))
