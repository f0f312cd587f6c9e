"""The console's API page: the OpenAPI document rendered on the server, no script, no CDN.

``/console/api`` shows every operation with its parameters and answers, every event type's
``data`` schema (personal fields marked) and the error catalogue; ``/console/api.json`` is the
document itself, for a browser signed in to the console (its cookie is scoped to /console).
"""

from __future__ import annotations

from topics.jsonvalue import JsonObject
from workers.http.console.html import esc, json_block, prose, table
from workers.http.console.views import Console
from workers.http.contract import Contract
from workers.http.edge.request import Request
from workers.http.edge.responses import Response

METHODS = ("get", "post", "put", "patch", "delete")
HEADINGS = ("method", "path", "summary", "parameters", "answers")


class ApiPage:
    """Renders one process's contract."""

    def __init__(self, console: Console, contract: Contract) -> None:
        self.console = console
        self.contract = contract

    async def page(self, request: Request) -> Response:
        doc = self.contract.document()
        body = (
            "<p>The fleet's contract, generated from its domains, routes and error catalogue: "
            '<a href="/console/api.json" id="download">the OpenAPI document (JSON)</a>, also at '
            "<code>GET /openapi.json</code> and printed by <code>eventfleet openapi</code>.</p>"
            + _security(doc)
            + "<h2>Operations</h2>"
            + table(HEADINGS, _operations(doc), css_id="operations")
            + "<h2>Event types</h2>"
            + _event_types(doc)
            + "<h2>Error codes</h2>"
            + table(("code", "status", "cause", "fix"), _errors(doc), css_id="errors")
        )
        return self.console.html("API", body)

    async def json(self, request: Request) -> Response:
        return Response(self.contract.as_bytes())


def _security(doc: JsonObject) -> str:
    schemes = doc["components"].get("securitySchemes", {})
    if not schemes:
        return '<p class="note" id="security">No sign-in: EVENTFLEET_AUTH=none.</p>'
    rows = [
        (esc(name), esc(s.get("scheme") or s.get("name", "")), prose(s.get("description", "")))
        for name, s in schemes.items()
    ]
    return "<h2>Sign-in</h2>" + table(("scheme", "how", "what"), rows, css_id="security")


def _operations(doc: JsonObject) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for route, item in doc["paths"].items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            params = ", ".join(
                f"{p['name']} ({p['in']})" for p in op.get("parameters", []) if p["in"] != "path"
            )
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None:
                params = ", ".join(filter(None, ("body: " + _schema_name(body["schema"]), params)))
            answers = "<br>".join(
                f"{esc(status)} {prose(response['description'])}"
                for status, response in op["responses"].items()
            )
            rows.append(
                (
                    f"<code>{esc(method.upper())}</code>",
                    f"<code>{esc(route)}</code>",
                    prose(op.get("summary", "")),
                    esc(params),
                    answers,
                )
            )
    return rows


def _schema_name(schema: JsonObject) -> str:
    refs = schema.get("oneOf", [schema])
    return " | ".join(r.get("$ref", "object").rsplit("/", 1)[-1] for r in refs)


def _event_types(doc: JsonObject) -> str:
    parts = []
    for name, schema in doc["components"]["schemas"].items():
        if "." not in name or name.endswith(".command"):
            continue
        personal = [f for f, s in schema.get("properties", {}).items() if s.get("x-personal")]
        marked = (
            f' <span class="note" id="personal-{esc(name)}">personal: {esc(", ".join(personal))}'
            "</span>"
            if personal
            else ""
        )
        parts.append(f'<h3 id="type-{esc(name)}">{esc(name)}{marked}</h3>' + json_block(schema))
    return "".join(parts)


def _errors(doc: JsonObject) -> list[tuple[str, ...]]:
    return [
        (f"<code>{esc(e['code'])}</code>", esc(e["status"]), prose(e["cause"]), prose(e["fix"]))
        for e in doc["x-error-codes"]
    ]
