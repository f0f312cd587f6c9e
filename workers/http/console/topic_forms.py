"""The topic pages' navigation and forms: the tabs between a topic's records, settings and
tail; the filter form (a GET, so a filtered page is a link to share); the zone form; the query
a link carries on."""

from __future__ import annotations

from urllib.parse import urlencode

from workers.http.console.html import esc, link, path
from workers.http.console.record_filter import ZONE_COOKIE
from workers.http.edge.request import Request


def topic_links(name: str, here: str) -> str:
    tabs = (
        ("records", path("topics", name)),
        ("settings", path("topics", name, "settings")),
        ("tail", path("topics", name, "tail")),
    )
    items = [
        f"<strong>{esc(label)}</strong>" if label == here else link(href, label)
        for label, href in tabs
    ]
    return f'<p class="tabs" id="tabs">{link("/console/topics", "all topics")} &gt; ' + (
        " · ".join(items) + "</p>"
    )


def filter_form(request: Request, name: str) -> str:
    q = request.query

    def field(param: str, label: str, size: int, hint: str = "") -> str:
        value = esc(q.get(param) or "")
        return (
            f'<label>{esc(label)} <input name="{param}" value="{value}" size="{size}" '
            f'placeholder="{esc(hint)}"></label>'
        )

    prefix = " selected" if q.get("key_match") == "prefix" else ""
    partition = q.get("partition") or ""
    return (
        f'<form method="get" action="{esc(path("topics", name))}" id="filters" class="filters">'
        + field("key", "key", 18)
        + f'<select name="key_match"><option value="exact">exact</option>'
        f'<option value="prefix"{prefix}>prefix</option></select> '
        + field("header", "header", 18, "name=value")
        + field("since", "since (UTC)", 20, "2026-01-01T00:00:00Z")
        + field("until", "until (UTC)", 20, "2026-01-01T01:00:00Z")
        + field("q", "value contains", 16)
        + f'<label>partition <input name="partition" value="{esc(partition)}" size="3"></label>'
        + ' <button type="submit">filter</button> '
        + link(path("topics", name), "clear")
        + "</form>"
        + zone_form(request, request.path_qs)
    )


def zone_form(request: Request, back: str) -> str:
    current = request.cookies.get(ZONE_COOKIE, "") or "UTC"
    return (
        '<form method="get" action="/console/zone" id="zone" class="filters">'
        f'<label>times in UTC and <input name="tz" value="{esc(current)}" size="16" '
        'placeholder="Europe/Berlin"></label>'
        f'<input type="hidden" name="next" value="{esc(back)}">'
        ' <button type="submit">show</button></form>'
    )


def with_query(request: Request, **changes: str) -> str:
    """The request's query with ``changes`` (an empty value drops the parameter)."""
    keep = {k: v for k, v in request.query.items() if k not in changes}
    keep.update({k: v for k, v in changes.items() if v})
    return urlencode(keep)
