"""The API's routes over one aggregate: append, events, snapshot, state, outcome; the probes and
metrics; the domains' own read routes. Each is declared once (``workers.http.edge.routes``)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

import orjson
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics import exposition as openmetrics

from snapshot_rules.queries import Query
from topics.envelope import MAX_VERSION, Actor, encode, utc_text
from topics.errors import EventfleetError, Forbidden, InvalidInput
from workers.http import declared
from workers.http.appends import register_multi_append
from workers.http.bodies import json_body
from workers.http.declared import EventsQuery, HealthQuery, OutcomeQuery, StateQuery
from workers.http.edge.request import Request
from workers.http.edge.responses import Response, fast_headers, json_response
from workers.http.edge.routes import Api
from workers.http.probes import health_answer, ready_answer
from workers.http.queries import FleetQueries, answer_page
from workers.http.ryw import Caller, ReadAfter, WaitBounds, WriteWaiter
from workers.metrics import create_ryw_metrics
from workers.roles.command.requests import CommandRequest, parse_request
from workers.roles.outcomes import Refused
from workers.roles.read.paging import next_link, read_page
from workers.runtime.answers import Answer, answer_bytes, answer_of, error, failure
from workers.runtime.compose import Runtime
from workers.runtime.door.identity import ANONYMOUS
from workers.runtime.door.incoming import Incoming
from workers.runtime.fleet import Fleet

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = "application/openmetrics-text"
OPENMETRICS_TEXT = OPENMETRICS + "; version=1.0.0; charset=utf-8"  # with exemplars
_openmetrics_text: Callable[[CollectorRegistry], bytes] = openmetrics.generate_latest
"""A registry in the OpenMetrics format, typed here: prometheus-client leaves it unannotated."""


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


def register_append(fleet: Fleet, api: Api) -> None:
    """``POST /v1/{type}/{id}/events``: the hot path of every command, the leanest route."""
    commands, limit = fleet.runtime.commands, fleet.runtime.settings.max_body_bytes
    within_s = fleet.runtime.settings.body_timeout_s
    draining = json_response(
        error(503, "shutting_down", "this worker is draining; retry on another.")
    )
    door = fleet.door

    async def append(request: Request) -> Response:
        if fleet.draining:
            return draining
        with fleet.serving():
            body = await json_body(request, limit, within_s)
            params = request.params
            command = parse_request(
                params["aggregate_type"],
                params["aggregate_id"],
                body,
                max_bytes=limit,
                actor=door.actor(request),  # from the token only, never from the body
            )
            if "if-match" in request.headers:
                command = expecting(command, request.headers.get("if-match", ""))
            outcome = await commands.handle(command)
            if isinstance(outcome, Refused) and outcome.code == "forbidden":
                door.count_forbidden(str(outcome.details.get("reason", "domain_rule")))
            status, answer = answer_bytes(outcome)
            if status == 429:  # too_many_writes: its Retry-After too
                return json_response(answer_of(outcome))
            return Prebuilt(answer, status)

    api.bind(declared.APPEND_ROUTE, append)


def etag(version: int | None) -> str:
    """A version as an ETag: what ``If-Match`` sends back to append only at that version."""
    return f'"{version or 0}"'


_IF_MATCH = re.compile(r'\s*"([0-9]{1,19})"\s*\Z')


def expecting(command: CommandRequest, if_match: str) -> CommandRequest:
    """``command`` with the version ``If-Match`` names as its expected version (an ETag the
    reads answer: ``"7"``); InvalidInput for another form, or one the body contradicts."""
    found = _IF_MATCH.match(if_match)
    version = int(found.group(1)) if found else None
    if version is None or version > MAX_VERSION:
        raise InvalidInput(
            f"If-Match: {if_match[:40]!r} must be one version as the reads' ETag gives it, "
            'e.g. If-Match: "7" (or send expected_version in the body).'
        )
    if command.expected_version is not None and command.expected_version != version:
        raise InvalidInput(
            f"If-Match names version {version} and the body's expected_version "
            f"{command.expected_version}; send one of them."
        )
    return replace(command, expected_version=version)


class Prebuilt(Response):
    """A JSON answer whose headers are the prebuilt ones (no per-request header work)."""

    __slots__ = ()

    def __init__(self, body: bytes, status: int) -> None:
        self.body = body
        self.status = status
        self.headers = []

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        return fast_headers(len(self.body))


class AggregateReads:
    """One aggregate's events, snapshot and state: the reads every fleet serves."""

    def __init__(self, runtime: Runtime, waiter: WriteWaiter) -> None:
        self.runtime = runtime
        self.waiter = waiter

    async def events(self, request: Request, query: EventsQuery) -> Response:
        rt = self.runtime
        params = request.params
        ref = (params["aggregate_type"], params["aggregate_id"])
        await read_after(self.waiter, ref, request, ReadAfter.of(query))
        page = await read_page(rt.events, ref, after_version=query.after_version, limit=query.limit)
        # clients see the current schema version
        listed = await rt.shredder.open_events([rt.domains.upcast(e) for e in page.events])
        if not listed and not await rt.events.heads([ref]):
            rt.domains.get(ref[0])  # nothing stored: is the type itself unknown?
            return json_response(no_events(*ref, None))
        # The envelope bytes are spliced in as they are: no decode/encode round trip per event.
        body = (
            b'{"events":['
            + b",".join(encode(e) for e in listed)
            + b'],"more":'
            + (b"true" if page.more else b"false")
            + b',"next_after_version":'
            + str(page.next_after_version).encode()
            + b"}"
        )
        headers = {}
        if page.more:
            following = {"after_version": page.next_after_version, "limit": query.limit}
            headers["Link"] = next_link(request.path, following)
        if listed:  # the version of the page's last event: the aggregate's, with more false
            headers["ETag"] = etag(listed[-1].version)
        return Response(body, headers=headers)

    async def snapshot(self, request: Request) -> Response:
        rt = self.runtime
        aggregate_type, aggregate_id = (
            request.params["aggregate_type"],
            request.params["aggregate_id"],
        )
        found = await rt.snapshots.load((aggregate_type, aggregate_id))
        if found is None:
            rt.domains.get(aggregate_type)  # nothing stored: is the type itself unknown?
            message = (
                f"{aggregate_type} {aggregate_id} has no snapshot yet; GET .../state "
                "answers its state either way."
            )
            return json_response(error(404, "not_found", message))
        state = await rt.shredder.open(found.state)
        body = {"version": found.version, "state": state, "taken_at": utc_text(found.taken_at)}
        return Response(orjson.dumps(body), headers={"ETag": etag(found.version)})

    async def state(self, request: Request, query: StateQuery) -> Response:
        rt = self.runtime
        aggregate_type, aggregate_id = (
            request.params["aggregate_type"],
            request.params["aggregate_id"],
        )
        domain = rt.domains.get(aggregate_type)
        await read_after(self.waiter, (aggregate_type, aggregate_id), request, ReadAfter.of(query))
        if query.at_version is None and query.as_of is None:
            folded = await rt.loader.latest(domain, aggregate_id)
        else:
            folded = await rt.loader.exactly_at(
                domain, aggregate_id, version=query.at_version, as_of=query.as_of
            )
        if folded.version == 0:
            return json_response(no_events(aggregate_type, aggregate_id, query.as_of))
        opened = await rt.shredder.open(folded.state)
        answer = Answer(200, {"version": folded.version, "state": opened})
        return json_response(answer, headers={"ETag": etag(folded.version)})


def register_views(fleet: Fleet, api: Api, operator: Api | None = None) -> WriteWaiter:
    """The API's routes of ``fleet``'s roles on ``api``, its probes and metrics on ``operator``
    (the operator's port: ``api`` unless it has one); the waiter their reads share."""
    fleet.door.authorize = read_access(fleet)
    if "commands" in fleet.roles:
        register_append(fleet, api)
        register_multi_append(fleet, api)
    waiter = write_waiter(fleet)
    reads = AggregateReads(fleet.runtime, waiter)
    api.bind(declared.EVENTS, reads.events)
    api.bind(declared.SNAPSHOT, reads.snapshot)
    api.bind(declared.STATE, reads.state)
    register_domain_queries(fleet, api, waiter)
    if "commands" in fleet.roles:
        register_outcome(fleet, api)
    register_probes(fleet, api if operator is None else operator)
    return waiter


def register_outcome(fleet: Fleet, api: Api) -> None:
    outcomes = fleet.runtime.outcomes

    async def outcome(request: Request, query: OutcomeQuery) -> Response:
        aggregate_type, aggregate_id = (
            request.params["aggregate_type"],
            request.params["aggregate_id"],
        )
        found = await outcomes.ask(
            aggregate_type,
            aggregate_id,
            command_id=query.command_id,
            event_id=query.event_id,
            actor=fleet.door.actor(request),  # a command id is its sender's own
        )
        if found is not None:
            return json_response(Answer(200, found))
        what = "command" if query.command_id else "event"
        message = (
            f"nothing is known of that {what} on {aggregate_type} {aggregate_id}: it was "
            "never sent here, or the command memory forgot it (after EVENTFLEET_COMMAND_TTL_S)."
        )
        body = {"outcome": "none", "event_id": query.event_id, "command_id": query.command_id}
        return json_response(error(404, "not_found", message, **body))

    api.bind(declared.OUTCOME, outcome)


def register_probes(fleet: Fleet, api: Api) -> None:
    rt = fleet.runtime

    async def healthz(request: Request, query: HealthQuery) -> Response:
        return json_response(health_answer(fleet, verbose=query.verbose))

    async def readyz(request: Request) -> Response:
        return json_response(ready_answer(fleet))

    async def metrics(request: Request) -> Response:
        fleet.refresh_gauges()
        if OPENMETRICS in (request.headers.get("accept") or ""):  # with exemplars (traces)
            body = _openmetrics_text(rt.metrics.registry)
            return Response(body, content_type=OPENMETRICS_TEXT)
        return Response(generate_latest(rt.metrics.registry), content_type=PROMETHEUS_TEXT)

    api.bind(declared.HEALTH, healthz)
    api.bind(declared.READY, readyz)
    api.bind(declared.METRICS, metrics)


def read_access(fleet: Fleet) -> Callable[[Incoming, Actor], None]:
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

    def authorize(request: Incoming, actor: Actor) -> None:
        if request.method not in ("GET", "HEAD"):
            return  # appends are judged by the domain's send rules
        params = request.params
        declared = by_route.get(request.route)
        if declared is not None:
            domain, param = declared
            aggregate_id = None if param is None else params[param]
        else:
            aggregate_type = params.get("aggregate_type")
            if aggregate_type is None or aggregate_type not in domains:
                return  # not a domain's route (live chat routes ask the rule themselves)
            domain, aggregate_id = domains.get(aggregate_type), params.get("aggregate_id")
        if not domain.access.may_read(actor, aggregate_id):
            what = "aggregates" if aggregate_id is None else aggregate_id
            raise Forbidden("read_refused", f"{actor.principal} may not read {domain.name} {what}.")

    return authorize


def register_domain_queries(fleet: Fleet, api: Api, waiter: WriteWaiter) -> None:
    """Serve every enabled domain's declared read routes (a disabled domain has none)."""
    rt = fleet.runtime
    views = {
        name: rt.views(projection.collection)
        for name, projection in rt.domains.projections().items()
    }
    context = FleetQueries(
        domains=rt.domains,
        loader=rt.loader,
        events=rt.events,
        views=views,
        first_hot=rt.events.first_hot,
    )
    for domain in rt.domains:
        for query in domain.queries:
            _register_query(fleet, api, domain.name, query, context, waiter)


def _register_query(
    fleet: Fleet, api: Api, domain: str, query: Query, context: FleetQueries, waiter: WriteWaiter
) -> None:
    shredder = fleet.runtime.shredder

    async def domain_query(request: Request) -> Response:
        found, next_page = await answer_page(
            query,
            context,
            request.params,
            request.query,
            waiter.serving(waiting_caller(request)),
            actor=fleet.door.actor(request),
        )
        if found.status < 300:  # a view or replayed state: its personal fields opened
            try:
                found = Answer(found.status, await shredder.open(found.body))
            except EventfleetError as e:
                found, next_page = failure(e), None
        headers = {}
        if next_page is not None:
            headers["Link"] = next_link(request.path, dict(next_page))
        return json_response(found, headers=headers)

    api.get(query.path, name=f"{domain}_query", tags=(domain,), domain=domain)(domain_query)


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
        bounds=WaitBounds(
            safety_poll_s=settings.ryw_poll_ms / 1000,
            max_waiters=settings.ryw_max_waiters,
            max_per_principal=settings.ryw_max_waiters_per_principal,
        ),
        metrics=create_ryw_metrics(rt.metrics.registry),
    )


def waiting_caller(request: Request) -> Caller:
    """Whose bound a read's wait counts against, and how to tell that its client left."""
    actor = request.actor
    return Caller(ANONYMOUS.principal if actor is None else actor.principal, request.gone)


async def read_after(
    waiter: WriteWaiter, ref: tuple[str, str], request: Request, after: ReadAfter | None
) -> None:
    """Wait until what the query names is stored (nothing named: return at once); a
    ``command_id`` is the caller's own (``command_scope``)."""
    if after is not None:
        caller = waiter.serving(waiting_caller(request))
        await caller.stored(
            ref, ReadAfter(after.min_version, after.command_id, after.wait_ms, request.actor)
        )
