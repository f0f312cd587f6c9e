"""The console's HTML: one layout, escaped cells, tables and JSON blocks. No script, no CDN."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from urllib.parse import quote

import orjson

from topics.jsonvalue import Json

STYLE = """
body{font-family:system-ui,sans-serif;margin:0;color:#222;font-size:14px}
header{background:#1d3557;color:#fff;padding:.45em .8em;display:flex;align-items:center;
gap:.7em;white-space:nowrap;font-size:12.5px}
header nav{display:flex;flex-wrap:wrap;gap:.1em .6em}
header a{color:#fff;text-decoration:none}
header a:hover{text-decoration:underline}
header .muted{color:#a9b7cc;font-size:11px}
header form{display:inline;margin-left:.6em}
header button{font-size:12px}
#who{margin-left:auto}
main{padding:.6em 1em}
h1{font-size:1.35em;margin:.3em 0 .4em}
h2{font-size:1.1em;margin:1em 0 .3em}
table{border-collapse:collapse;margin:.4em 0}
td,th{border:1px solid #d5d9e0;padding:.2em .45em;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600;white-space:nowrap}
tbody tr:nth-child(even){background:#f8f9fb}
tbody tr:hover{background:#eef4ff}
pre{margin:0;white-space:pre-wrap;max-width:60em}
td pre{font-size:12px;line-height:1.3;max-height:18em;overflow:auto;background:#f6f8fa;
padding:.2em .4em;border-radius:3px}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.note{background:#fff6d5;border:1px solid #e6c200;padding:.5em;margin:.5em 0}
.bad{color:#b00020}.good{color:#146c2e}.muted{color:#888}
textarea{width:60em;max-width:100%;height:12em;font-family:monospace}
form.filters{margin:.3em 0;display:flex;flex-wrap:wrap;gap:.3em .8em;align-items:center}
#topics td:first-child,#topics td:last-child,#records td:nth-child(-n+4),
#tail td:nth-child(-n+4){white-space:nowrap}
#records td:nth-child(5) pre,#tail td:nth-child(5) pre{min-width:32em}
#records td:nth-child(6),#tail td:nth-child(6){font-size:12px;max-width:22em;word-break:break-all}
#topics td:nth-child(n+2):nth-child(-n+4),#topics td:nth-child(7),#partitions td{text-align:right}
.local{color:#555;font-size:12px}
p.tabs{margin:.2em 0 .5em}
"""
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
