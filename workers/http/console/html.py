"""The console's HTML: one layout, escaped cells, tables and JSON blocks. No script, no CDN."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from importlib.resources import files
from urllib.parse import quote

import orjson

from topics.jsonvalue import Json

STYLE = files(__package__).joinpath("console.css").read_text(encoding="utf-8")  # served as a file
NAV = (
    ("/console", "Overview"),
    ("/console/search", "Search"),
    ("/console/log", "Log"),
    ("/console/dlq", "Dead letters"),
    ("/console/audit", "Audit"),
    ("/console/lag", "Lag"),
    ("/console/groups", "Groups"),
    ("/console/topics", "Topics"),
    ("/console/projections", "Projections"),
    ("/console/processes", "Processes"),
    ("/console/api", "API"),
    ("/console/post", "Post"),
    ("/console/produce", "Produce"),
)


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


_CODE = re.compile(r"`([^`]+)`")


def prose(value: object) -> str:
    """Text written for the docs (summaries, causes, fixes), escaped, with its `code` spans as
    <code>: a reader sees ``EVENTFLEET_X``, not backticks."""
    return _CODE.sub(r"<code>\1</code>", esc(value))


def path(*parts: str) -> str:
    """A console URL from raw parts, each percent-encoded."""
    return "/console/" + "/".join(quote(p, safe="") for p in parts)


STYLESHEET = "/console/static/console.css"
"""The one stylesheet, served as a file: the Content-Security-Policy allows no inline style
(``workers.http.edge.responses.SECURITY_HEADERS``, on every answer)."""


def page(
    title: str,
    body: str,
    *,
    actions: bool,
    who: str = "",
    auth: str = "",
    refresh_s: int | None = None,
) -> str:
    """``who``: the signed-in principal (with a sign-out form holding ``who``'s CSRF field);
    ``refresh_s``: the browser reloads the page that often (charts that follow; no script)."""
    refresh = f'<meta http-equiv="refresh" content="{int(refresh_s)}">' if refresh_s else ""
    nav = "".join(f'<a href="{href}">{esc(name)}</a>' for href, name in NAV)
    mode = "actions enabled" if actions else "read-only"
    open_door = (
        '<p class="note bad" id="auth-none">EVENTFLEET_AUTH=none: this console and the API are '
        "open to anyone who reaches the port.</p>"
        if auth == "none"
        else ""
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"{refresh}<title>{esc(title)} · eventfleet console</title>"
        # An empty icon: without one every page's browser asks /favicon.ico, and is refused.
        '<link rel="icon" href="data:,">'
        f'<link rel="stylesheet" href="{STYLESHEET}"></head>'
        f'<body><header><strong>eventfleet console</strong> <span class="muted">({mode})</span>'
        f'<nav>{nav}</nav><span id="who">{who}</span></header>'
        f"<main>{open_door}<h1>{esc(title)}</h1>{body}</main></body></html>"
    )


def table(headings: Sequence[str], rows: Iterable[Sequence[str]], *, css_id: str = "") -> str:
    """A table; cells are HTML already (escape with ``esc``)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headings)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    ident = f' id="{esc(css_id)}"' if css_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def json_block(value: Json, *, css_class: str = "") -> str:
    text = orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS, default=str)
    cls = f' class="{esc(css_class)}"' if css_class else ""
    return f"<pre{cls}>{esc(text.decode())}</pre>"


def link(href: str, text: str) -> str:
    return f'<a href="{esc(href)}">{esc(text)}</a>'


def hidden(name: str, value: str) -> str:
    return f'<input type="hidden" name="{esc(name)}" value="{esc(value)}">'
