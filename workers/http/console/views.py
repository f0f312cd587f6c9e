"""The console's pages on the fleet's HTTP edge: read-only pages, and the guarded replay POSTs."""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar
from urllib.parse import urlencode

import orjson

from snapshot_rules.domain import Domain
from snapshot_rules.replay import replay
from topics.envelope import AGGREGATE_ID_RE, AGGREGATE_TYPE_RE, Actor, Event, parse_utc
from topics.errors import EventfleetError, Forbidden, InvalidEnvelope, InvalidInput, NotFound
from workers.http.bodies import read_form
from workers.http.console.html import esc, json_block, link, page, path, table
from workers.http.console.samples import Sampler, charts
from workers.http.console.session import (
    HEADER,
    check_csrf,
    csrf_field,
    keep_csrf,
)
from workers.http.edge.request import Request
from workers.http.edge.responses import Response, json_response
from workers.http.queries import failure
from workers.roles.deadletter import check_operator
from workers.roles.read.paging import EventPage, read_page
from workers.runtime.answers import error
from workers.runtime.fleet import Fleet

TIMELINE_LIMIT = 1000
AGGREGATES_SHOWN = 500
_DIGITS = re.compile(r"[0-9]{1,18}\Z")
_T = TypeVar("_T")
Handler = Callable[[Request], Awaitable[Response]]
READ_ONLY = (
    "the console is read-only: set EVENTFLEET_CONSOLE_ACTIONS=true on this process to let "
    "operators re-submit dead letters, post events, produce records and reset offsets."
)


class Console:
    """The pages of one fleet process; each handler answers HTML, errors included."""

    def __init__(self, fleet: Fleet, sampler: Sampler, *, throughput_unit: str) -> None:
        self.fleet = fleet
        self.rt = fleet.runtime
        self.actions = fleet.runtime.settings.console_actions
        self.sampler = sampler
        self.throughput_unit = throughput_unit

    def html(
        self, title: str, body: str, status: int = 200, *, refresh_s: int | None = None
    ) -> Response:
        text = page(
            title,
            body,
            actions=self.actions,
            who=HEADER.get(),
            auth=self.fleet.door.mode,
            refresh_s=refresh_s,
        )
        return Response.html(text, status)

    def operator(self, request: Request, typed: str) -> str:
        """Who acts: the authenticated principal; the typed name only when the door is open."""
        actor = self.fleet.door.actor(request)
        return actor.principal if actor is not None else check_operator(typed, "acts")

    def guarded(self, handler: Handler, *, action: bool = False) -> Handler:
        """Roles checked (viewer to read, operator to act), then CSRF on actions (Origin: the door);
        errors become an HTML page with their status; actions are refused when read-only."""
        settings = self.rt.settings
        viewer, operator = settings.auth_viewer_role, settings.auth_operator_role

        @functools.wraps(handler)
        async def run(request: Request) -> Response:
            actor = self.fleet.door.actor(request)
            if actor is not None:  # Forbidden goes to the door: 403 JSON, counted
                needed = (operator,) if action else (viewer, operator)
                if not actor.has(*needed):
                    raise Forbidden(
                        "role_required",
                        f"{actor.principal} needs the role {' or '.join(needed)} to "
                        f"{'act in' if action else 'read'} the console.",
                    )
            if action and not self.actions:
                refused = error(
                    403, "console_read_only", READ_ONLY, setting="EVENTFLEET_CONSOLE_ACTIONS"
                )
                return json_response(refused)
            if action:
                form = await read_form(request, settings.max_body_bytes, settings.body_timeout_s)
                check_csrf(request, form)
            HEADER.set(_signed_in(request, actor))
            self.sampler.start()
            try:
                response = await handler(request)
            except EventfleetError as e:
                answer = failure(e)
                body = f'<p class="bad" id="error">{esc(answer.body["message"])}</p>'
                response = self.html(f"Error {answer.status}", body, answer.status)
            keep_csrf(request, response)
            return response

        return run

    # --- browsing -----------------------------------------------------------------------------

    async def overview(self, request: Request) -> Response:
        rows = []
        for domain in self.rt.domains:
            count = await self.rt.events.count([domain.name])
            rows.append(
                (
                    link(path("types", domain.name), domain.name),
                    esc(domain.mode.value),
                    esc(", ".join(domain.events)),
                    esc(count),
                )
            )
        body = (
            "<h2>Aggregate types</h2>"
            + table(("type", "mode", "event types", "stored events"), rows, css_id="types")
            + "<h2>Lag and throughput</h2>"
            + charts(self.sampler.samples)
        )
        return self.html("Overview", body)

    async def aggregates(self, request: Request) -> Response:
        domain = self.rt.domains.get(request.params["aggregate_type"])
        versions = await self.rt.events.versions([domain.name])
        ordered = sorted(versions.items(), key=lambda item: natural_key(item[0][1]))
        page_no = whole_query(request, "page", 1, low=1)
        start = (page_no - 1) * AGGREGATES_SHOWN
        shown = ordered[start : start + AGGREGATES_SHOWN]
        if page_no > 1 and not shown:
            raise NotFound(f"{domain.name} has {len(ordered)} aggregates: no page {page_no}.")
        rows = [(link(path("aggregates", t, i), i), esc(v)) for (t, i), v in shown]
        body = table(("aggregate id", "version"), rows, css_id="aggregates") + _pager(
            page_no, start, len(shown), len(ordered)
        )
        return self.html(f"{domain.name} aggregates", body)

    async def aggregate(self, request: Request) -> Response:
        aggregate_type = request.params["aggregate_type"]
        aggregate_id = request.params["aggregate_id"]
        if not AGGREGATE_ID_RE.match(aggregate_id) or not AGGREGATE_TYPE_RE.match(aggregate_type):
            raise InvalidInput(f"{aggregate_type!r} {aggregate_id!r} is no aggregate name.")
        domain = self.rt.domains.get(aggregate_type)
        at_version = whole_query(request, "at_version", None, low=1)
        as_of = _moment(request.query.get("as_of"))
        ref = (domain.name, aggregate_id)
        after = whole_query(request, "after_version", 0, low=0)
        page = await read_page(self.rt.events, ref, after_version=after, limit=TIMELINE_LIMIT)
        stored = [domain.upcast(e) for e in page.events]
        events = await self.rt.shredder.open_events(stored)  # shown with personal fields opened
        if not events and not await self.rt.events.heads([ref]):
            raise NotFound(f"{domain.name} {aggregate_id} has no events.")
        point = at_version is not None or as_of is not None
        rows = []
        for e in events:
            # Not ``after``: that name is the page's start, used below for captions and links.
            later = (at_version is not None and (e.version or 0) > at_version) or (
                as_of is not None and e.occurred_at > as_of
            )
            actor = e.metadata.actor
            cells = (
                esc(e.version),
                esc(e.occurred_at.isoformat()),
                esc(e.type),
                f"<code>{esc(e.id)}</code>",
                json_block(e.data),
                esc(
                    f"{actor.principal} ({', '.join(actor.roles) or 'no roles'})" if actor else "—"
                ),
                event_metadata(e, self.rt.settings.trace_url_template),
            )
            rows.append(
                cells if not later else tuple(f'<span class="muted">{c}</span>' for c in cells)
            )
        state_title = "Replayed state (latest)"
        if point:
            # As the API: a version past the newest is 404 version_not_found, never clamped.
            folded = await self.rt.loader.exactly_at(
                domain, aggregate_id, version=at_version, as_of=as_of
            )
            state_title = f"Replayed state at version {folded.version}"
        else:
            folded = await self.rt.loader.latest(domain, aggregate_id, save=False)
        body = (
            _time_travel_form(at_version, as_of)
            + f"<h2>Timeline</h2><p>{_timeline_caption(after, events)}</p>"
            + table(TIMELINE_HEADINGS, rows, css_id="timeline")
            + _timeline_pages(request, after, page)
            + f'<h2>{esc(state_title)}</h2><div id="state">'
            + f"{json_block(await self.rt.shredder.open(folded.state))}</div>"
            # the comparison replays from version 1: only a first page holds that prefix
            + await self._snapshot_section(domain, aggregate_id, stored if after == 0 else [])
            + _diff_links(domain.name, aggregate_id, events)
        )
        return self.html(f"{domain.name} {aggregate_id}", body)

    async def _snapshot_section(
        self, domain: Domain, aggregate_id: str, events: list[Event]
    ) -> str:
        snapshot = await self.rt.snapshots.load((domain.name, aggregate_id))
        if snapshot is None:
            return '<h2>Snapshot</h2><p id="snapshot">no snapshot taken yet</p>'
        if snapshot.version > len(events):
            verdict = '<span class="muted">beyond the timeline shown: not compared</span>'
        else:
            scratch = replay(domain.reducer, events[: snapshot.version])
            same = orjson.dumps(scratch.state, default=str) == orjson.dumps(
                snapshot.state, default=str
            )
            verdict = (
                '<span class="good">equals the state replayed from scratch to that version</span>'
                if same
                else '<span class="bad">DIFFERS from the state replayed from scratch</span>'
                + json_block(await self.rt.shredder.open(scratch.state))
            )
        shown = json_block(await self.rt.shredder.open(snapshot.state))
        return (
            f'<h2>Snapshot</h2><div id="snapshot"><p>version {esc(snapshot.version)}, taken '
            f"{esc(snapshot.taken_at.isoformat())}: {verdict}</p>{shown}</div>"
        )

    # --- charts ---------------------------------------------------------------------------------

    async def lag(self, request: Request) -> Response:
        recent = list(self.sampler.samples)[-10:]
        rows = [
            (
                esc(datetime.fromtimestamp(s.at).isoformat(timespec="seconds")),
                esc(s.lag),
                esc(f"{s.throughput:.2f}"),
            )
            for s in reversed(recent)
        ]
        body = (
            f"<p>sampled every {self.sampler.interval_s:g} s in this process; "
            f"throughput counts {esc(self.throughput_unit)}</p>"
            + charts(self.sampler.samples)
            + table(("sampled at", "lag (events)", "throughput (/s)"), rows, css_id="samples")
        )
        # The page follows the sampler: reloaded every sample interval (at least 2 s).
        return self.html("Lag & throughput", body, refresh_s=max(2, int(self.sampler.interval_s)))


def _diff_links(aggregate_type: str, aggregate_id: str, events: list[Event]) -> str:
    """The diff pages: the snapshot against replay, and the last event's change."""
    target = path("aggregates", aggregate_type, aggregate_id, "diff")
    links = [link(target, "snapshot against replay")]
    newest = max((e.version or 0 for e in events), default=0)
    if newest >= 2:
        links.append(link(f"{target}?from={newest - 1}&to={newest}", "the last event's change"))
    form = (
        f'<form method="get" action="{esc(target)}" id="diff-versions">state at version '
        '<input name="from" size="5"> against version <input name="to" size="5"> '
        '<button type="submit">diff</button></form>'
    )
    return '<h2>Diff</h2><p id="diffs">' + " · ".join(links) + "</p>" + form


TIMELINE_HEADINGS = ("version", "occurred at", "type", "event id", "data", "actor", "metadata")


def event_cells(event: Event) -> list[str]:
    """An event's first cells in a list of many aggregates' events: when, its aggregate (a link
    to its page), its version and its type."""
    aggregate = f"{event.aggregate_type} {event.aggregate_id}"
    return [
        esc(event.occurred_at.isoformat()),
        link(path("aggregates", event.aggregate_type, event.aggregate_id), aggregate),
        esc(event.version),
        esc(event.type),
    ]


def event_metadata(event: Event, trace_url: str = "") -> str:
    """Which conversation: command, correlation and causation ids, client, schema version,
    trace (a link to the trace UI with ``trace_url``, EVENTFLEET_TRACE_URL_TEMPLATE); only
    what the event carries (the actor has its own column)."""
    meta = event.metadata
    found = [
        ("command", meta.command_id),
        ("correlation", meta.correlation_id),
        ("causation", meta.causation_id),
        ("client", meta.client_id),
        ("schema", f"v{event.schema_version}"),
    ]
    items = "".join(
        f'<div><span class="muted">{esc(name)}</span> <code>{esc(value)}</code></div>'
        for name, value in found
        if value is not None
    )
    if meta.trace_id is not None:  # 32 hex digits (checked when decoded): safe in a URL
        shown = f"<code>{esc(meta.trace_id)}</code>"
        if trace_url:
            href = trace_url.replace("{trace_id}", meta.trace_id)
            shown = f'<a class="trace" href="{esc(href)}"><code>{esc(meta.trace_id)}</code></a>'
        items += f'<div><span class="muted">trace</span> {shown}</div>'
    return f'<div class="meta">{items}</div>'


def _signed_in(request: Request, actor: Actor | None) -> str:
    """The header's principal and its sign-out form (nothing when the door is open)."""
    if actor is None:
        return ""
    return (
        f" &nbsp; signed in as <strong>{esc(actor.principal)}</strong>"
        '<form method="post" action="/console/logout">'
        f'{csrf_field(request)}<button type="submit" id="sign-out">sign out</button></form>'
    )


_RUNS = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple[tuple[int, int, str], ...]:
    """Sort ``o2`` before ``o10``: digit runs compare as numbers, the rest as text."""
    return tuple(
        (1, int(part), part) if part.isdigit() else (0, 0, part)
        for part in _RUNS.split(text)
        if part
    )


def whole_query(request: Request, name: str, default: _T, *, low: int | None = None) -> int | _T:
    """The query parameter ``name`` as a whole number (at most 18 digits, at least ``low``), or
    ``default`` when it is not given; InvalidInput naming it."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not _DIGITS.match(raw) or (low is not None and int(raw) < low):
        from_low = "" if low is None else f" from {low}"
        raise InvalidInput(f"{name}={raw!r} must be a whole number{from_low}.")
    return int(raw)


def _pager(page_no: int, start: int, shown: int, total: int) -> str:
    """``showing 501 to 1000 of 1234`` with links to the pages before and after."""
    if total <= shown and page_no == 1:
        return ""
    links = []
    if page_no > 1:
        links.append(f'<a id="previous" href="?page={page_no - 1}">previous</a>')
    if start + shown < total:
        links.append(f'<a id="next" href="?page={page_no + 1}">next</a>')
    return (
        f'<p class="muted" id="pager">showing {start + 1} to {start + shown} of {total} '
        + " ".join(links)
        + "</p>"
    )


def _timeline_caption(after: int, events: list[Event]) -> str:
    if not events:
        return f"no events after version {after}"
    return f"events {esc(events[0].version)} to {esc(events[-1].version)}"


def _timeline_pages(request: Request, after: int, page: EventPage) -> str:
    """Links to the first and the next page of the timeline (every event is on exactly one)."""
    links = []
    if after > 0:
        links.append(link(_with_query(request, after_version=None), "first page"))
    if page.more:
        links.append(
            link(_with_query(request, after_version=str(page.next_after_version)), "next page")
        )
    return f'<p id="timeline-pages">{" · ".join(links)}</p>' if links else ""


def _with_query(request: Request, **changes: str | None) -> str:
    query = {k: v for k, v in request.query.items() if k not in changes}
    query.update({k: v for k, v in changes.items() if v is not None})
    return request.path + ("?" + urlencode(query) if query else "")


def _moment(raw: str | None) -> datetime | None:
    if raw is None or raw == "":
        return None
    try:
        return parse_utc(raw, "as_of")
    except InvalidEnvelope as e:
        raise InvalidInput(f"query parameter {e}.") from e


def _time_travel_form(at_version: int | None, as_of: datetime | None) -> str:
    version = "" if at_version is None else str(at_version)
    moment = "" if as_of is None else as_of.isoformat().replace("+00:00", "Z")
    return (
        '<form method="get" id="time-travel"><label>at version '
        f'<input name="at_version" value="{esc(version)}" size="6"></label> '
        f'<label>as of (UTC) <input name="as_of" value="{esc(moment)}" size="24" '
        'placeholder="2026-01-01T00:00:00Z"></label> <button type="submit">travel</button> '
        '<a href="?">latest</a></form>'
    )
