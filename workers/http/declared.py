"""The public API as declared, once: every route's path, method, query, answers and error codes.

The dispatcher checks a request against its route's declaration (the query Struct, the door's
``open``) before the route's function runs (``Api.bind`` joins the two, in the modules that
serve them); ``workers.http.openapi`` makes the document of the same declarations. A route
served but not declared here is not documented (a test keeps them in step).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

from topics.errors import InvalidInput
from workers.http.edge.routes import Declared, Doc, Param, Schema, Success
from workers.http.openapi_schemas import ref
from workers.http.ryw.reads import ReadAfterQuery
from workers.roles.read.paging import DEFAULT_PAGE, MAX_PAGE
from workers.runtime.answers import ERROR_CODES

__all__ = [
    "AUTH", "BY_MODE", "GONE", "NOT_HTTP", "OPERATIONS", "PER_TYPE", "UNPLACED", "EventsQuery",
    "HealthQuery", "OutcomeQuery", "StateQuery", "SubscribeQuery", "TypeSubscribeQuery",
]  # fmt: skip

PER_TYPE = "/v1/{aggregate_type}/"
"""Routes under it are documented once per enabled aggregate type."""
V1 = "/v1/{aggregate_type}/{aggregate_id}"
_VERSION = 2**62

# Error codes answered alike by many routes.
AUTH = ("unauthenticated", "forbidden")
UNAVAILABLE = ("store_unavailable", "dependency_unavailable")
READ = ("bad_request", "route_not_found", "not_found", "internal", "replay_failed", *UNAVAILABLE)
READ_AFTER = ("not_yet_stored", "refused", "too_many_waiters")
"""A read given ``min_version`` or ``command_id`` waits, and may answer these."""
GONE = ("history_compacted",)
"""A read of one aggregate's history that would cross versions stored nowhere any more."""
APPEND = (
    "bad_request", "route_not_found", "payload_too_large", "unknown_event_type", "invalid_data",
    "transition_rejected", "transition_rejected_at_store", "forbidden_at_store",
    "command_in_progress", "dead_lettered", "internal", "store_unavailable",
    "wrong_expected_version", "too_many_writes",
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


# The query parameters of each route, declared once: the dispatcher binds them, the document
# lists them (``workers.http.edge.params`` says how each kind of field is read).


class EventsQuery(ReadAfterQuery):
    after_version: Annotated[int, Meta(ge=0, le=_VERSION, description=(
        "Events after this version (0: from the first)."
    ))] = 0  # fmt: skip
    limit: Annotated[int, Meta(ge=1, le=MAX_PAGE, description="Events per page.")] = DEFAULT_PAGE


class StateQuery(ReadAfterQuery):
    at_version: Annotated[int, Meta(ge=1, le=_VERSION, description=(
        "The state after this event (time travel by version); not with as_of."
    ))] | None = None  # fmt: skip
    as_of: Annotated[datetime, Meta(description=(
        "The state at a moment, with its UTC offset (Z, or +hh:mm written %2B); not with "
        "at_version."
    ))] | None = None  # fmt: skip

    def __post_init__(self) -> None:
        if self.at_version is not None and self.as_of is not None:
            raise InvalidInput(
                "give at_version or as_of, not both: at_version=N asks for the state after "
                "event N, as_of=T for the state at a moment; drop one of them."
            )
        super().__post_init__()


_TEXT = Annotated[str, Meta(min_length=1, max_length=256)]


class OutcomeQuery(msgspec.Struct):
    command_id: Annotated[str, Meta(min_length=1, max_length=256, description=(
        "The command's id: exactly one of command_id and event_id."
    ))] | None = None  # fmt: skip
    event_id: _TEXT | None = None


class HealthQuery(msgspec.Struct):
    verbose: Annotated[bool, Meta(description="Add dependencies, readiness and the auth mode.")] = (
        False
    )


class SubscribeQuery(msgspec.Struct):
    after_version: Annotated[int, Meta(ge=0, le=_VERSION, description=(
        "Start after this version (Last-Event-ID wins over it)."
    ))] = 0  # fmt: skip


POSITION = r"^([0-9]{1,6}:[0-9]{1,18}(,[0-9]{1,6}:[0-9]{1,18})*)?$"


class TypeSubscribeQuery(msgspec.Struct):
    after: Annotated[str, Meta(max_length=2048, pattern=POSITION, description=(
        "<partition>:<offset>,… as a previous SSE id gave it."
    ))] = ""  # fmt: skip


LAST_EVENT_ID = Param(
    "Last-Event-ID", {"type": "string", "pattern": "^ *([0-9]{1,18})? *$"},
    description="resume after this version (wins over after_version)",
)  # fmt: skip


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


def _op(method: str, template: str, name: str, summary: str, ok: tuple[Success, ...],
        errors: tuple[str, ...], *, query: type[msgspec.Struct] | None = None,
        open: bool = False, **doc: object) -> Declared:  # fmt: skip
    tag = _tag(template)
    found = Doc(summary=summary, ok=ok, errors=errors, tags=(tag,), per_type=template.startswith(
        PER_TYPE), **doc)  # type: ignore[arg-type]  # Doc's own fields, by name  # fmt: skip
    return Declared(method, template, name, query=query, open=open, doc=found)


def _tag(route: str) -> str:
    if route.startswith("/v1/rooms/"):
        return "chat_room"
    return "fleet" if not route.startswith("/v1/") else "api"


APPEND_ROUTE = _op("POST", V1 + "/events", "append", "Append an event (a command)",
                   (Success(202, ref("Accepted"), description="accepted (async mode)"),
                    Success(201, ref("Stored"), description="stored (sync mode)")),
                   (*APPEND, *AUTH), command=True)  # fmt: skip
MULTI_APPEND = _op("POST", "/v1/appends", "append_many",
                   "Append an event to each of several aggregates, all or none (sync domains)",
                   (Success(201, ref("StoredAll"), description="every event stored, in one "
                            "transaction, in the request's order"),),
                   ("bad_request", "route_not_found", "payload_too_large",
                    "unsupported_media_type", "request_timeout", "cross_origin",
                    "unknown_aggregate_type", "read_only", "async_domain", "unknown_event_type",
                    "invalid_data", "transition_rejected", "wrong_expected_version", "conflict",
                    "command_reused", "too_many_writes", "transactions_unsupported",
                    "replay_failed", "internal", "store_unavailable", "marker_unavailable",
                    "dependency_unavailable", "outcome_unknown", "shutting_down", *AUTH),
                   body_schema=ref("MultiAppend"),
                   description="One transaction stores one event for each item, each at its "
                   "aggregate's next version (and its own expected_version, if given), or "
                   "none of them; events.stored then carries them in one produce. Items of "
                   "sync domains only (async_domain), one per aggregate, at most "
                   "EVENTFLEET_MULTI_APPEND_MAX_ITEMS (100). One command_id names the request: "
                   "a retry is answered the stored events (duplicate). A refusal names the "
                   "item (item, aggregate_type, aggregate_id).")  # fmt: skip
EVENTS = _op("GET", V1 + "/events", "events", "Read the aggregate's events, a page at a time",
             (Success(200, ref("EventPage"), link=True),), (*READ, *READ_AFTER, *GONE, *AUTH),
             query=EventsQuery)  # fmt: skip
STATE = _op("GET", V1 + "/state", "state", "Read the aggregate's state (now, at a version or time)",
            (Success(200, ref("State")),), (*READ, *READ_AFTER, "version_not_found", *GONE, *AUTH),
            query=StateQuery)  # fmt: skip
SNAPSHOT = _op("GET", V1 + "/snapshot", "snapshot", "Read the aggregate's newest snapshot",
               (Success(200, ref("Snapshot")),), (*READ, *AUTH))  # fmt: skip
OUTCOME = _op("GET", V1 + "/outcome", "outcome", "What became of a command or event",
              (Success(200, ref("Outcome")),), ("bad_request", "route_not_found", "not_found",
              "internal", *UNAVAILABLE, "marker_unavailable", *AUTH), query=OutcomeQuery)  # fmt: skip
SUBSCRIBE = _op("GET", V1 + "/subscribe", "subscribe",
                "Follow the aggregate's events (SSE or WebSocket)", (STREAM,), (*LIVE, *GONE, *AUTH),
                query=SubscribeQuery, headers=(LAST_EVENT_ID,))  # fmt: skip
SUBSCRIBE_TYPE = _op("GET", "/v1/{aggregate_type}/subscribe", "subscribe_type",
                     "Follow every stored event of the type (SSE or WebSocket)", (STREAM,),
                     (*LIVE, *AUTH), query=TypeSubscribeQuery)  # fmt: skip
ROOM_VIEW = _op("GET", "/v1/rooms/{room_id}/subscribe", "room_view",
                "Follow a chat room's live view (SSE or WebSocket)", (ROOM_STREAM,),
                (*LIVE, *GONE, *AUTH), query=SubscribeQuery, headers=(LAST_EVENT_ID,))  # fmt: skip
ROOM_SOCKET = _op("GET", "/v1/rooms/{room_id}/ws", "room_socket",
                  "Chat over a WebSocket (send commands, receive events); needs an upgrade",
                  (Success(101, {"type": "string"}, "text/plain", "switching to the WebSocket"),),
                  (*LIVE, *GONE, *AUTH), headers=(LAST_EVENT_ID,))  # fmt: skip
ERASE = _op("POST", "/v1/subjects/{subject}/erase", "erase",
            "Erase a subject's personal data (operators)", (Success(200, ref("Erasure")),),
            ("bad_request", "route_not_found", "not_found", "console_read_only", "cross_origin",
             "payload_too_large", "unsupported_media_type", "request_timeout", "internal",
             *UNAVAILABLE, *AUTH), body_schema=ref("EraseRequest"), body_required=False)  # fmt: skip
TYPES = _op("GET", "/v1/types", "types", "Every aggregate type: event types, transitions, schemas",
            (Success(200, ref("TypeList")),), ("internal", *AUTH))  # fmt: skip
ONE_TYPE = _op("GET", "/v1/types/{aggregate_type}", "type", "One aggregate type",
               (Success(200, ref("TypeListing")),),
               ("unknown_aggregate_type", "bad_request", "route_not_found", "internal", *AUTH))  # fmt: skip
TICKETS = _op("POST", "/v1/tickets", "ticket",
              "A single-use ticket for one live route (a browser's WebSocket or EventSource)",
              (Success(201, TICKET, description="the ticket: ?ticket=… on that route, once"),),
              ("bad_request", "route_not_found", "payload_too_large", "unsupported_media_type",
               "request_timeout", "cross_origin", "marker_unavailable", "too_many_tickets",
               "internal", *AUTH),
              body_schema=TICKET_REQUEST)  # fmt: skip
OPENAPI = _op("GET", "/openapi.json", "openapi", "This document",
              (Success(200, {"type": "object"}),), ("internal", *AUTH))  # fmt: skip
HEALTH = _op("GET", "/healthz", "health", "Liveness (?verbose adds dependencies)",
             (Success(200, ref("Health")),
              Success(503, ref("Health"), description="the process failed")),
             ("internal",), query=HealthQuery, open=True)  # fmt: skip
READY = _op("GET", "/readyz", "ready", "Readiness: can it take the work it owns",
            (Success(200, ref("Ready")), Success(503, ref("Ready"), description="not ready")),
            ("internal",), open=True)  # fmt: skip
METRICS = _op("GET", "/metrics", "metrics", "Prometheus metrics",
              (Success(200, {"type": "string"}, "text/plain"),), ("internal",), open=True)  # fmt: skip

OPERATIONS: tuple[Declared, ...] = (
    APPEND_ROUTE, MULTI_APPEND, EVENTS, STATE, SNAPSHOT, OUTCOME, SUBSCRIBE, SUBSCRIBE_TYPE, ROOM_VIEW,
    ROOM_SOCKET, ERASE, TYPES, ONE_TYPE, TICKETS, OPENAPI, HEALTH, READY, METRICS,
)  # fmt: skip
"""Every documented route."""

BY_MODE = ("conflict", "read_only")
"""Placed on the appends of the domains whose mode answers them."""
_PLACED = {code for op in OPERATIONS for code in op.doc.errors} | set(BY_MODE)
UNPLACED = tuple(e.code for e in ERROR_CODES if e.code not in _PLACED | NOT_HTTP)
"""Codes of the catalogue no operation lists yet (a code added since): every API operation
documents them, so the document never leaves out an answer the fleet may give."""
