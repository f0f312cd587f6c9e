"""The published contract: an OpenAPI 3.1 document generated from the domains and the routes.

``document(domains, routes, auth=...)`` is pure: the enabled domains, the route patterns the
process registered (``None``: every route a ``worker --role all`` serves) and the auth mode in,
a dict out. Nothing in it is copied by hand: each event type's ``data`` schema comes from its
declaration (``workers.runtime.openapi_schemas``), each error response from ``ERROR_CODES``
(a code added there is in the document at once: see ``UNPLACED``), and each operation is
listed only if its route is registered. Served at ``GET /openapi.json`` (``register_openapi``),
printed by ``eventfleet openapi`` and rendered in the console (``/console/api``).

Routes that name an aggregate type (``/v1/{aggregate_type}/{aggregate_id}/events`` and its
siblings) are documented once per enabled type (``/v1/order/{aggregate_id}/events``), each with
its own event types' bodies; ``x-route`` names the registered pattern.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from snapshot_rules.domain import Domain, Domains, Mode
from workers.runtime.answers import ERROR_CODES
from workers.runtime.openapi_schemas import (
    ACTOR,
    ENVELOPE,
    ID_PATTERN,
    TEXT_256,
    TYPE_PATTERN,
    Schema,
    command_schema,
    data_schema,
    data_schema_name,
    error_schema,
    error_schema_name,
    error_union,
)

__all__ = ["NOT_HTTP", "OPERATIONS", "UNPLACED", "document"]

OPENAPI_VERSION = "3.1.0"
PER_TYPE = "/v1/{aggregate_type}/"
"""Routes under it are documented once per enabled aggregate type."""

# Error codes answered alike by many routes.
AUTH = ("unauthenticated", "forbidden")
UNAVAILABLE = ("store_unavailable", "dependency_unavailable")
READ = ("bad_request", "route_not_found", "not_found", "internal", "replay_failed", *UNAVAILABLE)
READ_AFTER = ("not_yet_stored", "refused")
"""A read given ``min_version`` or ``command_id`` waits, and may answer these."""
APPEND = (
    "bad_request", "route_not_found", "payload_too_large", "unknown_event_type", "invalid_data",
    "transition_rejected", "transition_rejected_at_store", "forbidden_at_store",
    "command_in_progress", "dead_lettered", "internal", "store_unavailable",
    "marker_unavailable", "stream_unavailable", "dependency_unavailable", "outcome_unknown",
    "store_catching_up", "shutting_down",
)  # fmt: skip
LIVE = ("bad_request", "route_not_found", "not_acceptable", "too_many_subscriptions", "internal",
        *UNAVAILABLE)  # fmt: skip

NOT_HTTP = frozenset({"invalid_command", "already_replayed", "method_not_allowed"})
"""Codes no documented operation answers: ``invalid_command`` is a reply on
``commands.replies``, ``already_replayed`` the console's dead-letter replay, and
``method_not_allowed`` a method the document does not list for its path."""


@dataclass(frozen=True, slots=True)
class Param:
    """A query or header parameter."""

    name: str
    schema: Schema
    where: str = "query"
    description: str = ""


@dataclass(frozen=True, slots=True)
class Success:
    """A non-error answer: its status, media type and body schema (a components ref or inline)."""

    status: int
    schema: Schema
    media: str = "application/json"
    description: str = "OK"
    link: bool = False
    """The answer may carry ``Link: <…>; rel="next"`` (a page of more)."""


@dataclass(frozen=True, slots=True)
class Operation:
    """One method on one registered route, and every answer it may give."""

    route: str
    method: str
    name: str
    summary: str
    ok: tuple[Success, ...]
    errors: tuple[str, ...]
    query: tuple[Param, ...] = ()
    body: bool = False
    open: bool = False
    """Served to anyone (the door does not ask who calls)."""


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _int(low: int, high: int) -> Schema:
    return {"type": "integer", "minimum": low, "maximum": high}


def _or_empty(schema: Schema) -> Schema:
    """A parameter the fleet reads as absent when it is empty (``?after_version=``)."""
    return {"anyOf": [schema, {"type": "string", "maxLength": 0}]}


WAIT = (
    Param("min_version", _int(1, 2**62), description="wait until this version is stored"),
    Param("command_id", {**TEXT_256, "maxLength": 200}, description="wait for its event"),
    Param("wait_ms", _int(0, 30_000), description="how long to wait (default 1000)"),
)
PAGE = (Param("after_version", _or_empty(_int(0, 2**62))),
        Param("limit", _or_empty(_int(1, 1000))))  # fmt: skip
HISTORY = (
    Param("at_version", _or_empty(_int(1, 2**62)), description="the state after this event"),
    Param("as_of", _or_empty({"type": "string", "format": "date-time"}),
          description="a moment with its UTC offset (Z, or +hh:mm written %2B); not with "
          "at_version"),
)  # fmt: skip
OUTCOME = (
    Param("command_id", TEXT_256, description="exactly one of command_id and event_id"),
    Param("event_id", TEXT_256),
)
SSE_START = (
    Param("after_version", _or_empty(_int(0, 2**62))),
    Param("Last-Event-ID", {"type": "string", "pattern": "^ *([0-9]{1,18})? *$"}, "header",
          "resume after this version (wins over after_version)"),
)  # fmt: skip
POSITION = r"^([0-9]{1,6}:[0-9]{1,18}(,[0-9]{1,6}:[0-9]{1,18})*)?$"


def _stream(message: Schema, what: str) -> Success:
    """An SSE answer: each message's ``data`` is JSON (``contentSchema``), its ``id`` the
    position to resume after (``Last-Event-ID``)."""
    event = {"type": "object", "required": ["data"], "properties": {
        "id": {"type": "string"}, "event": {"type": "string"},
        "data": {"type": "string", "contentMediaType": "application/json",
                 "contentSchema": message}}}  # fmt: skip
    return Success(200, event, "text/event-stream", what)


STREAM = _stream(_ref("Envelope"), "the events, one SSE message each (text/event-stream)")
ROOM_STREAM = _stream({"type": "object"}, "the room's changes, one SSE message each")
V1 = "/v1/{aggregate_type}/{aggregate_id}"

OPERATIONS: tuple[Operation, ...] = (
    Operation(V1 + "/events", "post", "append", "Append an event (a command)",
              (Success(202, _ref("Accepted"), description="accepted (async mode)"),
               Success(201, _ref("Stored"), description="stored (sync mode)")),
              (*APPEND, *AUTH), body=True),
    Operation(V1 + "/events", "get", "events", "Read the aggregate's events, a page at a time",
              (Success(200, _ref("EventPage"), link=True),), (*READ, *READ_AFTER, *AUTH),
              (*PAGE, *WAIT)),
    Operation(V1 + "/state", "get", "state", "Read the aggregate's state (now, at a version or time)",
              (Success(200, _ref("State")),), (*READ, *READ_AFTER, "version_not_found", *AUTH),
              (*HISTORY, *WAIT)),
    Operation(V1 + "/snapshot", "get", "snapshot", "Read the aggregate's newest snapshot",
              (Success(200, _ref("Snapshot")),), (*READ, *AUTH)),
    Operation(V1 + "/outcome", "get", "outcome", "What became of a command or event",
              (Success(200, _ref("Outcome")),), ("bad_request", "route_not_found", "not_found",
              "internal", *UNAVAILABLE, "marker_unavailable", *AUTH), OUTCOME),
    Operation(V1 + "/subscribe", "get", "subscribe", "Follow the aggregate's events (SSE or WebSocket)",
              (STREAM,), (*LIVE, *AUTH), SSE_START),
    Operation("/v1/{aggregate_type}/subscribe", "get", "subscribe_type",
              "Follow every stored event of the type (SSE or WebSocket)", (STREAM,),
              (*LIVE, *AUTH), (Param("after", {"type": "string", "maxLength": 2048,
                                               "pattern": POSITION},
              description="<partition>:<offset>,… as a previous SSE id gave it"),)),
    Operation("/v1/rooms/{room_id}/subscribe", "get", "room_view",
              "Follow a chat room's live view (SSE or WebSocket)", (ROOM_STREAM,), (*LIVE, *AUTH),
              SSE_START),
    Operation("/v1/rooms/{room_id}/ws", "get", "room_socket",
              "Chat over a WebSocket (send commands, receive events); needs an upgrade",
              (Success(101, {"type": "string"}, "text/plain", "switching to the WebSocket"),),
              (*LIVE, *AUTH), SSE_START[1:]),
    Operation("/v1/subjects/{subject}/erase", "post", "erase",
              "Erase a subject's personal data (operators)", (Success(200, _ref("Erasure")),),
              ("bad_request", "route_not_found", "not_found", "console_read_only",
               "cross_origin", "internal", *UNAVAILABLE, *AUTH), body=True),
    Operation("/v1/types", "get", "types", "Every aggregate type: event types, transitions, schemas",
              (Success(200, _ref("TypeList")),), ("internal", *AUTH)),
    Operation("/v1/types/{aggregate_type}", "get", "type", "One aggregate type",
              (Success(200, _ref("TypeListing")),),
              ("unknown_aggregate_type", "bad_request", "route_not_found", "internal", *AUTH)),
    # POST /v1/tickets (a browser's ticket for a live route) goes here once it is served.
    Operation("/openapi.json", "get", "openapi", "This document", (Success(200, {"type": "object"}),),
              ("internal", *AUTH)),
    Operation("/healthz", "get", "health", "Liveness (?verbose adds dependencies)",
              (Success(200, _ref("Health")),
               Success(503, _ref("Health"), description="the process failed")),
              ("internal",), (Param("verbose", {"type": "string"}),), open=True),
    Operation("/readyz", "get", "ready", "Readiness: can it take the work it owns",
              (Success(200, _ref("Ready")), Success(503, _ref("Ready"), description="not ready")),
              ("internal",), open=True),
    Operation("/metrics", "get", "metrics", "Prometheus metrics",
              (Success(200, {"type": "string"}, "text/plain"),), ("internal",), open=True),
)  # fmt: skip
"""Every documented operation; ``POST /v1/tickets`` joins it when served."""

BY_MODE = ("conflict", "read_only")
"""Placed by ``_add`` on the appends of the domains whose mode answers them."""
_PLACED = {code for op in OPERATIONS for code in op.errors} | set(BY_MODE)
UNPLACED = tuple(e.code for e in ERROR_CODES if e.code not in _PLACED | NOT_HTTP)
"""Codes of the catalogue no operation lists yet (a code added since): every API operation
documents them, so the document never leaves out an answer the fleet may give."""


def document(
    domains: Domains,
    routes: Collection[str] | None = None,
    *,
    auth: str,
    version: str = "0",
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of a process serving ``routes`` (aiohttp patterns) with
    ``domains``, under auth mode ``auth`` (``jwt``, ``proxy`` or ``none``)."""
    served = _served(domains, routes)
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        if op.route not in served:
            continue
        if op.route.startswith(PER_TYPE):
            for domain in domains:
                _add(paths, op, domain, auth)
        elif not op.route.startswith("/v1/rooms/") or "chat_room" in domains:
            _add(paths, op, None, auth)
    for domain in domains:
        for query in domain.queries:
            if query.path in served:
                paths.setdefault(query.path, {})["get"] = _query_operation(domain, query.path, auth)
    found: dict[str, Any] = {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "eventfleet",
            "version": version,
            "description": "Generated from the enabled domains, the registered routes and the "
            "error catalogue (ERROR_CODES). Every error body is {error, message, …details}.",
        },
        "paths": dict(sorted(paths.items())),
        "components": _components(domains, auth),
        "x-error-codes": [
            {"code": e.code, "status": e.status, "cause": e.cause, "fix": e.fix}
            for e in ERROR_CODES
        ],
    }
    if auth != "none":
        found["security"] = [{_scheme_name(auth): []}]
    return found


def _served(domains: Domains, routes: Collection[str] | None) -> set[str]:
    if routes is not None:
        return set(routes)
    return {op.route for op in OPERATIONS} | {q.path for d in domains for q in d.queries}


def _add(paths: dict[str, dict[str, Any]], op: Operation, domain: Domain | None, auth: str) -> None:
    path = op.route if domain is None else op.route.replace(PER_TYPE, f"/v1/{domain.name}/")
    if domain is not None and op.name == "append" and domain.mode is Mode.STORAGE:
        ok: tuple[Success, ...] = ()
        errors: tuple[str, ...] = ("read_only", "bad_request", "route_not_found", "internal",
                                   *AUTH)  # fmt: skip
    elif domain is not None and op.name == "append":
        status = 201 if domain.mode is Mode.SYNC else 202
        ok = tuple(s for s in op.ok if s.status == status)
        errors = (*op.errors, *(("conflict",) if domain.mode is Mode.SYNC else ()))
    else:
        ok, errors = op.ok, op.errors
    errors = (*errors, "bad_request")  # any route: a query parameter given twice
    if op.open:
        errors = tuple(c for c in errors if c not in AUTH)
    elif auth == "none":
        errors = tuple(c for c in errors if c != "unauthenticated")
    suffix = "" if domain is None else f"_{domain.name}"
    found: dict[str, Any] = {
        "operationId": op.name + suffix,
        "summary": op.summary,
        "x-route": op.route,
        "tags": [domain.name if domain is not None else _tag(op.route)],
        "parameters": [*_path_params(path), *(_param(p) for p in op.query)],
        "responses": _responses(ok, errors if op.open else (*errors, *UNPLACED)),
    }
    if op.open:
        found["security"] = []
    if op.body and domain is not None:
        found["requestBody"] = _command_body(domain)
    elif op.body:
        found["requestBody"] = {
            "required": False,
            "content": {"application/json": {"schema": _ref("EraseRequest")}},
        }
    if domain is not None and op.name == "append":
        for success in ok:
            found["responses"][str(success.status)]["links"] = _links(domain)
    paths.setdefault(path, {})[op.method] = found


def _tag(route: str) -> str:
    if route.startswith("/v1/rooms/"):
        return "chat_room"
    return "fleet" if not route.startswith("/v1/") else "api"


def _links(domain: Domain) -> dict[str, Any]:
    """Stateful links: an append's answer leads to the aggregate's state, events and outcome."""
    same = {"aggregate_id": "$request.path.aggregate_id"}
    return {
        "state": {"operationId": f"state_{domain.name}", "parameters": same},
        "events": {"operationId": f"events_{domain.name}", "parameters": same},
        "outcome": {
            "operationId": f"outcome_{domain.name}",
            "parameters": {**same, "event_id": "$response.body#/event_id"},
        },
    }


def _path_params(path: str) -> list[Schema]:
    found = []
    for part in path.split("/"):
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1].split(":")[0]
            schema = {"type": "string", "pattern": TYPE_PATTERN if name == "aggregate_type"
                      else ID_PATTERN}  # fmt: skip
            found.append({"name": name, "in": "path", "required": True, "schema": schema})
    return found


def _param(param: Param) -> Schema:
    found: Schema = {"name": param.name, "in": param.where, "required": False,
                     "schema": param.schema}  # fmt: skip
    if param.description:
        found["description"] = param.description
    return found


def _responses(ok: Iterable[Success], errors: Iterable[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for success in ok:
        response: dict[str, Any] = {
            "description": success.description,
            "content": {success.media: {"schema": success.schema}},
        }
        if success.link:
            response["headers"] = {"Link": {"schema": {"type": "string"},
                                            "description": 'the next page, rel="next"'}}  # fmt: skip
        found[str(success.status)] = response
    by_status: dict[int, list[str]] = {}
    statuses = {e.code: e.status for e in ERROR_CODES}
    for code in dict.fromkeys(errors):
        by_status.setdefault(statuses[code], []).append(code)
    for status, codes in sorted(by_status.items()):
        found[str(status)] = {
            "description": ", ".join(sorted(codes)),
            "content": {"application/json": {"schema": error_union(codes)}},
        }
    # aiohttp's protocol layer answers a request line or header it cannot parse (over 8190
    # bytes, say) itself, in plain text, before any route or middleware sees the request.
    found.setdefault("400", {"description": "", "content": {}})
    found["400"]["description"] = ", ".join(
        filter(None, (found["400"]["description"], "unparsable request (plain text)"))
    )
    found["400"]["content"]["text/plain"] = {"schema": {"type": "string"}}
    return dict(sorted(found.items()))


def _command_body(domain: Domain) -> dict[str, Any]:
    commands = [_ref(f"{data_schema_name(domain, t)}.command") for t in domain.events]
    mapping = {t: f"#/components/schemas/{data_schema_name(domain, t)}.command"
               for t in domain.events}  # fmt: skip
    schema: Schema = (
        commands[0] if len(commands) == 1
        else {"oneOf": commands, "discriminator": {"propertyName": "type", "mapping": mapping}}
    )  # fmt: skip
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _query_operation(domain: Domain, path: str, auth: str) -> dict[str, Any]:
    errors = (*READ, *READ_AFTER, "unknown_aggregate_type", *AUTH, *UNPLACED)
    if auth == "none":
        errors = tuple(c for c in errors if c != "unauthenticated")
    return {
        "operationId": "query_" + "_".join(p.strip("{}") for p in path.split("/")[2:] if p),
        "summary": f"A read route declared by the {domain.name} domain",
        "x-route": path,
        "tags": [domain.name],
        "parameters": [*_path_params(path), *(_param(p) for p in WAIT)],
        "responses": _responses((Success(200, {"type": "object"}, link=True),), errors),
    }


def _scheme_name(auth: str) -> str:
    return "proxy" if auth == "proxy" else "bearer"


def _security_schemes(auth: str) -> dict[str, Any]:
    if auth == "proxy":
        return {"proxy": {
            "type": "apiKey", "in": "header", "name": "X-Forwarded-User",
            "description": "set by the authenticating proxy (EVENTFLEET_AUTH_TRUSTED_PROXIES), "
            "with X-Forwarded-Groups for roles; from any other address it is refused",
        }}  # fmt: skip
    if auth == "none":
        return {}
    return {"bearer": {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": "a token of EVENTFLEET_AUTH_ISSUER for EVENTFLEET_AUTH_AUDIENCE; `sub` "
        "is the principal, the roles claim its roles",
    }}  # fmt: skip


def _components(domains: Domains, auth: str) -> dict[str, Any]:
    schemas: dict[str, Schema] = {
        "Envelope": ENVELOPE,
        "Actor": ACTOR,
        **_bodies(),
    }
    if auth != "none":  # the operator is the token's principal; a body is read, not used
        schemas["EraseRequest"] = {"type": "object", "description": "ignored (its operator "
                                   "is the token's principal); empty or any JSON object"}  # fmt: skip
    for domain in domains:
        for event_type in domain.events:
            name = data_schema_name(domain, event_type)
            schemas[name] = data_schema(domain, event_type)
            schemas[f"{name}.command"] = command_schema(domain, event_type)
    for entry in ERROR_CODES:
        schemas[error_schema_name(entry.code)] = error_schema(entry)
    found: dict[str, Any] = {"schemas": schemas}
    schemes = _security_schemes(auth)
    if schemes:
        found["securitySchemes"] = schemes
    return found


def _bodies() -> dict[str, Schema]:
    obj, integer, text = {"type": "object"}, {"type": "integer"}, {"type": "string"}
    return {
        "Accepted": {"type": "object", "required": ["event_id"], "properties": {
            "event_id": text, "partition": integer, "offset": integer, "version": integer,
            "duplicate": {"type": "boolean"}}},
        "Stored": {"type": "object", "required": ["event_id", "version"], "properties": {
            "event_id": text, "version": integer, "published": {"type": "boolean"},
            "duplicate": {"type": "boolean"}}},
        "EventPage": {"type": "object", "required": ["events", "more", "next_after_version"],
                      "properties": {"events": {"type": "array", "items": _ref("Envelope")},
                                     "more": {"type": "boolean"}, "next_after_version": integer}},
        "State": {"type": "object", "required": ["version", "state"],
                  "properties": {"version": integer, "state": {}}},
        "Snapshot": {"type": "object", "required": ["version", "state", "taken_at"],
                     "properties": {"version": integer, "state": {}, "taken_at": text}},
        "Outcome": {"type": "object", "required": ["outcome", "event_id"], "properties": {
            "outcome": {"enum": ["stored", "rejected", "accepted", "in_progress", "unknown"]},
            "event_id": text, "command_id": {"type": ["string", "null"]},
            "version": integer, "reason": text, "message": text}},
        "Erasure": {"type": "object", "required": ["subject", "erased_at", "by"], "properties": {
            "subject": text, "erased_at": text, "by": text, "keys_destroyed": integer,
            "already_erased": {"type": "boolean"},
            "unreadable_everywhere_within_s": {"type": "number"}}},
        "EraseRequest": {"type": "object", "properties": {
            "operator": {**TEXT_256, "maxLength": 100,
                         "description": "only with EVENTFLEET_AUTH=none: who erases"}}},
        "Health": {"type": "object", "required": ["status", "roles"], "properties": {
            "status": {"enum": ["alive", "failed"]}, "roles": {"type": "array"},
            "dependencies": obj, "ready": obj, "auth": text}},
        "Ready": {"type": "object", "required": ["ready", "checks"],
                  "properties": {"ready": {"type": "boolean"}, "checks": obj}},
        "TypeListing": {"type": "object",
                        "required": ["aggregate_type", "mode", "event_types", "personal", "queries"],
                        "properties": {"aggregate_type": text, "mode": text,
                                       "event_types": obj, "personal": {"type": ["object", "null"]},
                                       "queries": {"type": "array", "items": text}}},
        "TypeList": {"type": "object", "required": ["types"], "properties": {
            "types": {"type": "array", "items": _ref("TypeListing")}}},
    }  # fmt: skip
