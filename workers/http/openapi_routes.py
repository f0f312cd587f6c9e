"""The route table of the contract: every documented operation, its parameters and answers.

One ``Operation`` per method of a registered route: its success answers (status, media type,
body schema) and the error codes of ``ERROR_CODES`` it may answer. ``workers.http.openapi``
turns it into paths; a route not registered in a process is left out of its document.
"""

from __future__ import annotations

from dataclasses import dataclass

from workers.http.openapi_schemas import TEXT_256, Schema, ref
from workers.runtime.answers import ERROR_CODES

__all__ = [
    "AUTH", "BY_MODE", "NOT_HTTP", "OPERATIONS", "PER_TYPE", "READ", "READ_AFTER", "UNPLACED",
    "WAIT", "Operation", "Param", "Success",
]  # fmt: skip

PER_TYPE = "/v1/{aggregate_type}/"
"""Routes under it are documented once per enabled aggregate type."""

# Error codes answered alike by many routes.
AUTH = ("unauthenticated", "forbidden")
UNAVAILABLE = ("store_unavailable", "dependency_unavailable")
READ = ("bad_request", "route_not_found", "not_found", "internal", "replay_failed", *UNAVAILABLE)
READ_AFTER = ("not_yet_stored", "refused", "too_many_waiters")
"""A read given ``min_version`` or ``command_id`` waits, and may answer these."""
APPEND = (
    "bad_request", "route_not_found", "payload_too_large", "unknown_event_type", "invalid_data",
    "transition_rejected", "transition_rejected_at_store", "forbidden_at_store",
    "command_in_progress", "dead_lettered", "internal", "store_unavailable",
    "marker_unavailable", "stream_unavailable", "dependency_unavailable", "outcome_unknown",
    "store_catching_up", "shutting_down", "unsupported_media_type", "request_timeout",
    "cross_origin",
)  # fmt: skip
LIVE = ("bad_request", "route_not_found", "not_acceptable", "too_many_subscriptions", "internal",
        "cross_origin", *UNAVAILABLE)  # fmt: skip
"""``cross_origin``: a WebSocket upgrade from another site's page."""

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
    body_schema: Schema | None = None
    """The request body's schema when it is not a command's (``body``) nor the erase's."""
    open: bool = False
    """Served to anyone (the door does not ask who calls)."""


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


STREAM = _stream(ref("Envelope"), "the events, one SSE message each (text/event-stream)")
ROOM_STREAM = _stream({"type": "object"}, "the room's changes, one SSE message each")
V1 = "/v1/{aggregate_type}/{aggregate_id}"
_WHEN = {"type": "string", "format": "date-time"}
TICKET_REQUEST: Schema = {
    "type": "object",
    "required": ["route"],
    "additionalProperties": False,
    "properties": {"route": {"type": "string",
                             "description": "a live route's path, no query (the body: 4 KB at most)"}},
}  # fmt: skip
TICKET: Schema = {
    "type": "object",
    "required": ["ticket", "route", "principal", "expires_at"],
    "properties": {
        "ticket": {"type": "string", "maxLength": 128},
        "route": {"type": "string"},
        "principal": {"type": "string"},
        "expires_at": _WHEN,
        "credential_expires_at": {"anyOf": [_WHEN, {"type": "null"}]},
    },
}

OPERATIONS: tuple[Operation, ...] = (
    Operation(V1 + "/events", "post", "append", "Append an event (a command)",
              (Success(202, ref("Accepted"), description="accepted (async mode)"),
               Success(201, ref("Stored"), description="stored (sync mode)")),
              (*APPEND, *AUTH), body=True),
    Operation(V1 + "/events", "get", "events", "Read the aggregate's events, a page at a time",
              (Success(200, ref("EventPage"), link=True),), (*READ, *READ_AFTER, *AUTH),
              (*PAGE, *WAIT)),
    Operation(V1 + "/state", "get", "state", "Read the aggregate's state (now, at a version or time)",
              (Success(200, ref("State")),), (*READ, *READ_AFTER, "version_not_found", *AUTH),
              (*HISTORY, *WAIT)),
    Operation(V1 + "/snapshot", "get", "snapshot", "Read the aggregate's newest snapshot",
              (Success(200, ref("Snapshot")),), (*READ, *AUTH)),
    Operation(V1 + "/outcome", "get", "outcome", "What became of a command or event",
              (Success(200, ref("Outcome")),), ("bad_request", "route_not_found", "not_found",
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
              "Erase a subject's personal data (operators)", (Success(200, ref("Erasure")),),
              ("bad_request", "route_not_found", "not_found", "console_read_only",
               "cross_origin", "payload_too_large", "unsupported_media_type", "request_timeout",
               "internal", *UNAVAILABLE, *AUTH), body=True),
    Operation("/v1/types", "get", "types", "Every aggregate type: event types, transitions, schemas",
              (Success(200, ref("TypeList")),), ("internal", *AUTH)),
    Operation("/v1/types/{aggregate_type}", "get", "type", "One aggregate type",
              (Success(200, ref("TypeListing")),),
              ("unknown_aggregate_type", "bad_request", "route_not_found", "internal", *AUTH)),
    Operation("/v1/tickets", "post", "ticket",
              "A single-use ticket for one live route (a browser's WebSocket or EventSource)",
              (Success(201, TICKET, description="the ticket: ?ticket=… on that route, once"),),
              ("bad_request", "route_not_found", "payload_too_large", "unsupported_media_type",
               "request_timeout", "cross_origin", "marker_unavailable", "internal", *AUTH),
              body=True, body_schema=TICKET_REQUEST),
    Operation("/openapi.json", "get", "openapi", "This document", (Success(200, {"type": "object"}),),
              ("internal", *AUTH)),
    Operation("/healthz", "get", "health", "Liveness (?verbose adds dependencies)",
              (Success(200, ref("Health")),
               Success(503, ref("Health"), description="the process failed")),
              ("internal",), (Param("verbose", {"type": "string"}),), open=True),
    Operation("/readyz", "get", "ready", "Readiness: can it take the work it owns",
              (Success(200, ref("Ready")), Success(503, ref("Ready"), description="not ready")),
              ("internal",), open=True),
    Operation("/metrics", "get", "metrics", "Prometheus metrics",
              (Success(200, {"type": "string"}, "text/plain"),), ("internal",), open=True),
)  # fmt: skip
"""Every documented operation."""

BY_MODE = ("conflict", "read_only")
"""Placed by ``_add`` on the appends of the domains whose mode answers them."""
_PLACED = {code for op in OPERATIONS for code in op.errors} | set(BY_MODE)
UNPLACED = tuple(e.code for e in ERROR_CODES if e.code not in _PLACED | NOT_HTTP)
"""Codes of the catalogue no operation lists yet (a code added since): every API operation
documents them, so the document never leaves out an answer the fleet may give."""
