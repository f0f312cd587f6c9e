"""The console's operator pages: search over every stored event, consumer groups and
partitions, and a console page for any unknown console path (a 404 page, not the API's JSON)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import urlencode

from topics.envelope import parse_utc
from topics.errors import InvalidEnvelope, InvalidInput, NotFound
from workers.adapters.kafka.lag import PartitionLag
from workers.http.console.html import esc, json_block, link, path, table
from workers.http.console.views import Console, event_cells, event_metadata, natural_key
from workers.http.edge.request import Request
from workers.http.edge.responses import Response
from workers.ports import EventQuery, SearchPosition
from workers.runtime.lag import read_lag_once

SEARCH_PAGE = 100
_FIELDS = ("type", "prefix", "event_type", "since", "until", "command_id", "correlation_id")
_TEXT_MAX = 200


class OperatorPages:
    """Groups and partitions; the console's own 404."""

    def __init__(self, console: Console) -> None:
        self.console = console

    async def groups(self, request: Request) -> Response:
        fleet = self.console.fleet
        rt = fleet.runtime
        if fleet.lag is not None and fleet.lag.last_at is not None:
            lags, read_at = fleet.lag.last, fleet.lag.last_at
            source = "the lag role in this process, every EVENTFLEET_LAG_INTERVAL_S"
        else:
            lags, read_at = await read_lag_once(rt.kafka, rt.settings, rt.domains), None
            source = "read from the brokers now (no lag role runs in this process)"
        when = (
            datetime.fromtimestamp(read_at, UTC).isoformat(timespec="seconds")
            if read_at is not None
            else "now"
        )
        body = (
            f'<p class="muted" id="source">{esc(source)}; read {esc(when)}</p>'
            + _group_summary(lags)
            + "<h2>Partitions</h2>"
            + _partitions(lags)
        )
        return self.console.html("Groups & partitions", body)

    async def search(self, request: Request) -> Response:
        asked = {name: request.query.get(name, "").strip() for name in _FIELDS}
        query = self._query(asked)
        before = _position(request.query.get("before", ""))
        form = _search_form(asked, self.console.rt.domains.names())
        if query is None:
            return self.console.html("Search", form)
        shredder = self.console.rt.shredder
        found = await self.console.rt.events.search(query, limit=SEARCH_PAGE, before=before)
        found = await shredder.open_events(found)  # personal fields shown opened, as elsewhere
        rows = [
            (
                *event_cells(e),
                f"<code>{esc(e.id)}</code>",
                json_block(e.data),
                event_metadata(e, self.console.rt.settings.trace_url_template),
            )
            for e in found
        ]
        headings = ("occurred at", "aggregate", "version", "type", "event id", "data", "metadata")
        pages = []
        if before is not None:
            pages.append(link("?" + urlencode(_kept(asked)), "newest"))
        if len(found) == SEARCH_PAGE:
            last = found[-1]
            cursor = f"{last.occurred_at.isoformat()}~{last.id}"
            pages.append(link("?" + urlencode({**_kept(asked), "before": cursor}), "older"))
        where = " on this page" if pages else ""
        body = (
            form
            + f'<p id="found">{len(found)} events{where}, newest first</p>'
            + table(headings, rows, css_id="results")
            + (f'<p id="search-pages">{" · ".join(pages)}</p>' if pages else "")
        )
        return self.console.html("Search", body)

    def _query(self, asked: Mapping[str, str]) -> EventQuery | None:
        if not any(asked.values()):
            return None
        for name, value in asked.items():
            if len(value) > _TEXT_MAX:
                raise InvalidInput(f"{name} is longer than {_TEXT_MAX} characters.")
        if asked["type"]:
            self.console.rt.domains.get(asked["type"])  # unknown: 404 naming the enabled ones
        return EventQuery(
            aggregate_type=asked["type"] or None,
            id_prefix=asked["prefix"] or None,
            event_type=asked["event_type"] or None,
            since=_moment(asked["since"], "since"),
            until=_moment(asked["until"], "until"),
            command_id=asked["command_id"] or None,
            correlation_id=asked["correlation_id"] or None,
        )

    async def not_found(self, request: Request) -> Response:
        raise NotFound(
            f"the console has no page {request.path!r}; start from the overview (/console)."
        )


def _group_summary(lags: list[PartitionLag]) -> str:
    totals: dict[str, list[int]] = {}
    for lag in lags:
        entry = totals.setdefault(lag.group, [0, 0])
        entry[0] += lag.lag
        entry[1] += 1
    if not totals:
        return '<p id="groups">no consumer group of this fleet has committed an offset yet</p>'
    rows = [
        (link(path("groups", group, "reset"), group), esc(total), esc(count))  # to its reset
        for group, (total, count) in sorted(totals.items(), key=lambda g: natural_key(g[0]))
    ]
    return "<h2>Groups</h2>" + table(("group", "lag (events)", "partitions"), rows, css_id="groups")


def _partitions(lags: list[PartitionLag]) -> str:
    ordered = sorted(lags, key=lambda p: (natural_key(p.group), natural_key(p.topic), p.partition))
    rows = [
        (
            esc(p.group),
            esc(p.topic),
            esc(p.partition),
            esc(p.committed),
            esc(p.high_water),
            f'<span class="{"bad" if p.lag else "good"}">{esc(p.lag)}</span>',
        )
        for p in ordered
    ]
    headings = ("group", "topic", "partition", "committed offset", "end offset", "lag")
    return table(headings, rows, css_id="partitions")


def _kept(asked: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in asked.items() if value}


def _moment(raw: str, name: str) -> datetime | None:
    if not raw:
        return None
    try:
        return parse_utc(raw, name)
    except InvalidEnvelope as e:
        raise InvalidInput(f"{e} (for example 2026-01-01T00:00:00Z).") from e


def _position(raw: str) -> SearchPosition | None:
    """The ``before`` cursor of an older page: ``<occurred_at>~<event id>``."""
    if not raw:
        return None
    moment, _, event_id = raw.rpartition("~")
    if not moment or not event_id or len(event_id) > _TEXT_MAX:
        raise InvalidInput("before= is not a page cursor of this search; start from the newest.")
    at = _moment(moment, "before")
    assert at is not None
    return at, event_id


def _search_form(asked: Mapping[str, str], types: list[str]) -> str:
    def field(name: str, label: str, placeholder: str = "") -> str:
        return (
            f'<label>{esc(label)} <input name="{name}" value="{esc(asked.get(name, ""))}" '
            f'placeholder="{esc(placeholder)}" size="18"></label> '
        )

    options = "".join(
        f'<option value="{esc(t)}"{" selected" if asked.get("type") == t else ""}>{esc(t)}</option>'
        for t in ["", *types]
    )
    return (
        '<form method="get" id="search">'
        f'<label>type <select name="type">{options}</select></label> '
        + field("prefix", "aggregate id starts with")
        + field("event_type", "event type")
        + field("since", "since (UTC)", "2026-01-01T00:00:00Z")
        + field("until", "until (UTC)")
        + field("command_id", "command id")
        + field("correlation_id", "correlation id")
        + '<button type="submit">search</button></form>'
    )
