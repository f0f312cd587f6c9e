"""The console's page of the global read (``/console/log``): every stored event across
aggregates from a position, in the log's order, filtered by type, event type and id prefix, a
page at a time; the same read, positions and read rules as ``GET /v1/events``."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode

from workers.http.console.html import esc, json_block, link, table
from workers.http.console.views import Console, event_cells, event_metadata
from workers.http.edge.request import Request
from workers.http.edge.responses import Response
from workers.roles.read.global_read import GlobalRead, choose, read_rule

LOG_PAGE = 50
_FIELDS = ("type", "event_type", "prefix", "after")
_TEXT_MAX = 8192


class GlobalLogPage:
    """``/console/log``: the global read as the signed-in principal reads it."""

    def __init__(self, console: Console, reader: GlobalRead) -> None:
        self.console = console
        self.reader = reader

    async def log(self, request: Request) -> Response:
        asked = {name: request.query.get(name, "").strip()[:_TEXT_MAX] for name in _FIELDS}
        rt = self.console.rt
        keep = choose(
            rt.domains,
            aggregate_types=[asked["type"]] if asked["type"] else [],
            event_types=[asked["event_type"]] if asked["event_type"] else [],
            id_prefix=asked["prefix"],
        )
        found = await self.reader.page(
            after=asked["after"],
            limit=LOG_PAGE,
            keep=keep,
            may_read=read_rule(rt.domains, self.console.fleet.door.actor(request)),
        )
        template = rt.settings.trace_url_template
        rows = [
            (
                *event_cells(e),
                json_block(e.data),
                event_metadata(e, template),
                link("?" + urlencode({**_kept(asked), "after": position}), "from here"),
            )
            for e, position in zip(found.events, found.positions, strict=True)
        ]
        headings = ("occurred at", "aggregate", "version", "type", "data", "metadata", "after it")
        more = (
            link("?" + urlencode({**_kept(asked), "after": found.next}), "next page")
            if found.more
            else "the end of the log, as it is now"
        )
        body = (
            _form(asked, rt.domains.names())
            + f"<p id=\"found\">{len(found.events)} events in the log's order (each aggregate's "
            "in version order)</p>"
            + table(headings, rows, css_id="log")
            + f'<p id="log-pages">{more}</p>'
            + f'<p class="muted" id="position">next position: <code>{esc(found.next)}</code></p>'
        )
        return self.console.html("Log", body)


def _kept(asked: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in asked.items() if value and name != "after"}


def _form(asked: Mapping[str, str], types: list[str]) -> str:
    def field(name: str, label: str, size: int = 18) -> str:
        return (
            f'<label>{esc(label)} <input name="{name}" value="{esc(asked.get(name, ""))}" '
            f'size="{size}"></label> '
        )

    options = "".join(
        f'<option value="{esc(t)}"{" selected" if asked.get("type") == t else ""}>{esc(t)}</option>'
        for t in ["", *types]
    )
    return (
        '<form method="get" id="log-filter">'
        f'<label>type <select name="type">{options}</select></label> '
        + field("event_type", "event type")
        + field("prefix", "aggregate id starts with")
        + field("after", "after position", 30)
        + '<button type="submit">read</button></form>'
    )
