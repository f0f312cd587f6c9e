"""The HTTP API reference, one section per route, generated from the routes' declarations.

Each route is documented once, as declared (``workers.http.declared``: its path, query Struct,
headers, body, answers and error codes; ``workers.http.openapi`` reads the same declarations
for the document), whatever the number of aggregate types it serves; the routes the example
domains declare (``Domain.queries``) and the pages people open (``PAGES``: the chat page) join
them. Each section ends with a request to paste into the shell holding dev's export block.
"""

from __future__ import annotations

import html
import shlex
from collections.abc import Iterable, Mapping, Sequence

import msgspec
import orjson

from snapshot_rules.domain import Domain, Domains, Mode
from topics.jsonvalue import Json, JsonObject
from workers.devtools.banner import API_ENV, ORDER_PLACED, STATUS, TOKEN_ENV, opening
from workers.http.declared import AUTH, BY_MODE, OPERATIONS, PAGES, PER_TYPE, UNPLACED
from workers.http.edge.routes import PATH_PARAMS, Declared, Success
from workers.http.openapi import query_params
from workers.http.openapi_schemas import command_schema
from workers.http.ryw.reads import ReadAfterQuery
from workers.runtime.error_codes import ERROR_CODES

EXAMPLE_PATH = {
    "aggregate_type": "order",
    "aggregate_id": "o-1",
    "room_id": "lobby",
    "subject": "ann",
    "process": "order_lifecycle",
    "key": "o-1",
}
"""Path parameters of the example requests (the example domains' names)."""
EXAMPLE_QUERY: Mapping[str, Mapping[str, str]] = {
    "events": {"after_version": "0", "limit": "100"},
    "state": {"at_version": "2"},
    "outcome": {"command_id": "o-1-placed"},
    "subscribe": {"after_version": "0"},
    "subscribe_type": {"after": "0:0,1:0"},
    "room_view": {"after_version": "0"},
    "health": {"verbose": "true"},
}
"""The query of each route's example request, by route name (checked against its Struct)."""
EXAMPLE_BODY: Mapping[str, Json] = {"ticket": {"route": "/v1/rooms/lobby/ws"}}
"""The body of each route's example request that takes one besides a command."""
LIVE = ("subscribe", "subscribe_type", "room_view")
"""Routes answered as a stream: the example asks for SSE (curl -N)."""
PATH_DESCRIPTIONS = {
    "room_id": "The chat room's id.",
    "subject": "The subject whose personal data is erased.",
}


def code(text: object) -> str:
    """An HTML code span whose words break only at ``_``, ``/``, ``.``, ``,``, ``&`` and ``?``,
    never mid-word (a generated table's long names: ``EVENTFLEET_KAFKA_URL``)."""
    escaped = html.escape(str(text), quote=False)
    for mark in ("_", "/", ".", ",", "&amp;"):
        escaped = escaped.replace(mark, f"{mark}<wbr>")
    return f"<code>{escaped.replace('?', '<wbr>?')}</code>"


def cell(text: str) -> str:
    """A Markdown table cell: a pipe in the text is escaped, a line break flattened, and outside
    its code spans ``<`` and ``>`` are text (``<partition>`` is no HTML tag)."""
    parts = text.replace("|", "\\|").replace("\n", " ").split("`")
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """A Markdown table's lines: ``header``, its rule, then ``rows`` (cells formatted already)."""
    lines = [f"| {' | '.join(header)} |", "|" + "---|" * len(header)]
    return lines + [f"| {' | '.join(map(str, cells))} |" for cells in rows]


def reference(domains: Domains) -> str:
    """Every route's section, the declared routes first, then the domains' and the pages."""
    sections = [_section(op, domains) for op in OPERATIONS]
    sections += [_query_section(domain, q.path) for domain in domains for q in domain.queries]
    sections += [_section(page, domains) for page in PAGES]
    return "\n\n".join(sections)


def _section(op: Declared, domains: Domains) -> str:
    doc = op.doc
    parts = [f"### `{op.method} {op.template}`", "", doc.summary.rstrip(".") + "."]
    if doc.description:
        parts += ["", doc.description]
    if op.template.startswith(PER_TYPE):
        names = ", ".join(f"`{d.name}`" for d in domains)
        parts += ["", f"Served for every enabled aggregate type (here {names})."]
    parts += ["", _who(op)]
    parts += _parameters(op)
    parts += _body(op, domains)
    parts += _answers(op, domains)
    parts += ["", "Example:", "", "```bash", _example(op, domains), "```"]
    return "\n".join(parts)


def _who(op: Declared) -> str:
    if op.open:
        return "Open: no sign-in (the door does not ask who calls)."
    return "Needs a caller: a bearer token (`EVENTFLEET_AUTH=jwt`) or the proxy's headers."


def _parameters(op: Declared) -> list[str]:
    rows = [
        (name, "path", {"type": "string"}, _path_description(name))
        for name in _path_names(op.template)
    ]
    defaults = _defaults(op.query)
    for param in query_params(op.query):
        meaning = param.get("description", "")
        if param["name"] in defaults:
            meaning = f"{meaning} Default: `{defaults[param['name']]}`.".strip()
        rows.append((param["name"], "query", param["schema"], meaning))
    rows += [(p.name, p.where, p.schema, p.description) for p in op.doc.headers]
    if not rows:
        return []
    cells = [(code(n), where, cell(kind(schema)), cell(m)) for n, where, schema, m in rows]
    return ["", *table(("parameter", "in", "type", "meaning"), cells)]


def _path_names(template: str) -> list[str]:
    return [p[1:-1].split(":")[0] for p in template.split("/") if p.startswith("{")]


def _path_description(name: str) -> str:
    known = PATH_PARAMS.get(name)
    return known.description if known is not None else PATH_DESCRIPTIONS.get(name, "")


def _defaults(query: type[msgspec.Struct] | None) -> dict[str, str]:
    if query is None:
        return {}
    found = {}
    for field in msgspec.structs.fields(query):
        if field.default not in (msgspec.NODEFAULT, None, ""):
            found[field.name] = (
                str(field.default).lower()
                if isinstance(field.default, bool)
                else str(field.default)
            )
    return found


def kind(schema: JsonObject) -> str:
    """A JSON Schema in a few words: its type and bounds."""
    if "anyOf" in schema:
        return " or ".join(kind(k) for k in schema["anyOf"])
    if "const" in schema:
        return f"`{schema['const']}`"
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    if "$ref" in schema:
        return f"`{str(schema['$ref']).rsplit('/', 1)[-1]}`"
    types = schema.get("type", "any")
    words = [" or ".join(types) if isinstance(types, list) else str(types)]
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and high is not None:
        words.append(f"{low} to {_number(high)}")
    elif low is not None or high is not None:
        words.append(f"at least {low}" if low is not None else f"at most {_number(high)}")
    if "maxLength" in schema:
        words.append(f"≤ {schema['maxLength']} characters")
    if "format" in schema:
        words.append(str(schema["format"]))
    return ", ".join(words)


def _number(value: object) -> str:
    """A bound as people read it: 2^62, not 4611686018427387904."""
    if isinstance(value, int) and value >= 2**32 and (value & (value - 1)) == 0:
        return f"2^{value.bit_length() - 1}"
    if isinstance(value, int) and value >= 2**32 and (value & (value + 1)) == 0:
        return f"2^{value.bit_length()} - 1"
    return str(value)


def _body(op: Declared, domains: Domains) -> list[str]:
    doc = op.doc
    if doc.command:
        domain = _first(domains, Mode.ASYNC)
        fields = command_schema(domain, next(iter(domain.events)))["properties"]
        shown = {"type": "string", "data": "object"}
        rows = [
            (name, shown.get(name) or kind(schema), _command_field(name, schema))
            for name, schema in fields.items()
        ]
        head = (
            "A command, as JSON (`Content-Type: application/json`): one of the type's event "
            "types and its `data`, as `GET /v1/types/{aggregate_type}` lists them."
        )
    elif doc.body_schema is not None:
        props = doc.body_schema.get("properties", {})
        rows = [
            (name, kind(schema), str(schema.get("description", "")))
            for name, schema in props.items()
        ]
        head = str(doc.body_schema.get("description", "")) or "JSON"
        head = f"{head} ({'required' if doc.body_required else 'optional'})."
    else:
        return []
    cells = [(code(n), cell(k), cell(m)) for n, k, m in rows]
    return ["", f"Body: {head}", "", *table(("field", "type", "meaning"), cells)]


def _command_field(name: str, schema: JsonObject) -> str:
    if name == "type":
        return "the event type (required)"
    if name == "data":
        return "the event's data, as the event type's schema declares it"
    return str(schema.get("description", "optional, recorded in the event's metadata"))


def _answers(op: Declared, domains: Domains) -> list[str]:
    doc = op.doc
    rows = [(s.status, _success(s)) for s in doc.ok]
    errors = [*doc.errors, "bad_request"]
    if doc.command:
        errors += BY_MODE
    if op.open:
        errors = [c for c in errors if c not in AUTH]
    elif not doc.hidden:
        errors += UNPLACED
    statuses = {e.code: e.status for e in ERROR_CODES}
    by_status: dict[int, list[str]] = {}
    for found in dict.fromkeys(errors):
        by_status.setdefault(statuses[found], []).append(found)
    rows += [
        (status, ", ".join(f"`{c}`" for c in sorted(codes))) for status, codes in by_status.items()
    ]
    return ["", *table(("status", "answer"), [(s, cell(what)) for s, what in sorted(rows)])]


def _success(success: Success) -> str:
    body = kind(success.schema) if "$ref" in success.schema else f"`{success.media}`"
    said = (
        success.description
        if success.media not in success.description
        else (success.description.replace(f" ({success.media})", ""))
    )
    link = '; a `Link: <…>; rel="next"` header while there is more' if success.link else ""
    return f"{said}: {body}{link}"


def _first(domains: Domains, mode: Mode) -> Domain:
    return next((d for d in domains if d.mode is mode), next(iter(domains)))


def _query_section(domain: Domain, path: str) -> str:
    op = Declared("GET", path, "query", query=ReadAfterQuery)
    parts = [
        f"### `GET {path}`",
        "",
        f"A read route the `{domain.name}` domain declares (`Domain.queries`); its own "
        "parameters are the domain's (see its guide). The read-your-writes parameters are "
        "every read route's.",
        "",
        _who(op),
    ]
    parts += _parameters(op)
    answers = [(200, "the domain's answer: JSON"), (404, "`not_found`: nothing stored for it")]
    parts += ["", *table(("status", "answer"), answers)]
    parts += ["", "Example:", "", "```bash", _example(op, Domains([domain])), "```"]
    return "\n".join(parts)


def _example(op: Declared, domains: Domains) -> str:
    """A curl line (or, for the chat socket, a WebSocket client's) for the export block's shell."""
    path = op.template
    for name in _path_names(op.template):
        path = path.replace(f"{{{name}}}", EXAMPLE_PATH[name])
    query = "&".join(f"{k}={v}" for k, v in EXAMPLE_QUERY.get(op.name, {}).items())
    url = f'"${API_ENV}{path}{"?" + query if query else ""}"'
    auth = "" if op.open else f'-H "Authorization: Bearer ${TOKEN_ENV}" '
    if path.endswith("/ws"):
        return f'websocat {auth}"${{{API_ENV}/http/ws}}{path}"'
    if op.doc.hidden:
        return f"curl -s -o /dev/null -w '%{{http_code}}\\n' {url}   # open it in a browser"
    words = f"curl -s {STATUS} {auth}"
    if op.name in LIVE:
        return f"curl -sN {auth}-H 'Accept: text/event-stream' {url}"
    body = _example_body(op, domains)
    if op.method == "POST":
        sent = "" if body is None else f"-d {shlex.quote(orjson.dumps(body).decode())}"
        return f"{words}-H 'Content-Type: application/json' -XPOST {url} {sent}".rstrip()
    return f"{words}{url}".replace("  ", " ")


def _example_body(op: Declared, domains: Domains) -> Json:
    if op.doc.command:
        domain = _first(domains, Mode.ASYNC)
        first = (
            (str(ORDER_PLACED["type"]), ORDER_PLACED["data"])
            if domain.name == "order"
            else opening(domain)
        )
        if first is not None:
            return {"type": first[0], "command_id": "o-1-placed", "data": first[1]}
    return EXAMPLE_BODY.get(op.name)


def example_queries() -> Iterable[tuple[Declared, Mapping[str, str]]]:
    """Each route with an example query, for a test to bind it to the route's Struct."""
    by_name = {op.name: op for op in OPERATIONS}
    return ((by_name[name], query) for name, query in EXAMPLE_QUERY.items())
