"""The public API as declared, once: every route's path, method, query, answers and error codes.

The dispatcher checks a request against its route's declaration (the query Struct, the door's
``open``) before the route's function runs (``Api.bind`` joins the two, in the modules that
serve them); ``workers.http.openapi`` makes the document of the same declarations. A route
served but not declared here is not documented (a test keeps them in step).

Layout: ``# fmt: skip`` here keeps every route declared in a few lines, read as a table (the
formatter would spread each over a dozen lines).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from topics.envelope import AGGREGATE_TYPE_RE, EVENT_TYPE_RE, READ_VERSION_MAX
from topics.errors import InvalidInput
from workers.http.edge.routes import Declared, Doc, Param, Schema, Success
from workers.http.openapi_schemas import ref
from workers.http.ryw.reads import ReadAfterQuery
from workers.roles.command.requests import ID_MAX
from workers.roles.process.desk import MAX_PAGE as PROCESS_PAGE
from workers.roles.read.paging import DEFAULT_PAGE, MAX_PAGE
from workers.runtime.answers import ERROR_CODES

__all__ = [
    "AUTH", "BY_MODE", "GONE", "NOT_HTTP", "OPERATIONS", "PAGES", "PER_TYPE", "UNPLACED",
    "DeadlinesQuery", "EventsQuery", "GlobalEventsQuery", "GlobalSubscribeQuery", "HealthQuery",
    "InstancesQuery", "OutcomeQuery", "StateQuery", "SubscribeQuery", "TypeSubscribeQuery",
]  # fmt: skip

PER_TYPE = "/v1/{aggregate_type}/"
"""Routes under it are documented once per enabled aggregate type."""
V1 = "/v1/{aggregate_type}/{aggregate_id}"

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

NOT_HTTP = frozenset(
    {"invalid_command", "already_replayed", "method_not_allowed", "consumer_group_active"}
)
"""Codes no documented operation answers: ``invalid_command`` is a reply on
``commands.replies``, ``already_replayed`` the console's dead-letter replay,
``consumer_group_active`` the console's reset of a group's offsets, and
``method_not_allowed`` a method the document does not list for its path."""


# The query parameters of each route, declared once: the dispatcher binds them, the document
# lists them (``workers.http.edge.params`` says how each kind of field is read).


class EventsQuery(ReadAfterQuery):
    after_version: Annotated[int, Meta(ge=0, le=READ_VERSION_MAX, description=(
        "Events after this version (0: from the first)."
    ))] = 0  # fmt: skip
    limit: Annotated[int, Meta(ge=1, le=MAX_PAGE, description="Events per page.")] = DEFAULT_PAGE


class StateQuery(ReadAfterQuery):
    at_version: Annotated[int, Meta(ge=1, le=READ_VERSION_MAX, description=(
        "The state after this event (time travel by version); not with as_of."
    ))] | None = None  # fmt: skip
    as_of: Annotated[datetime, Meta(description=(
        "The state at a moment, in UTC only: ending Z or +00:00 (written %2B00:00); another "
        "offset is refused. Not with at_version."
    ))] | None = None  # fmt: skip

    def __post_init__(self) -> None:
        if self.at_version is not None and self.as_of is not None:
            raise InvalidInput(
                "give at_version or as_of, not both: at_version=N asks for the state after "
                "event N, as_of=T for the state at a moment; drop one of them."
            )
        super().__post_init__()


_TEXT = Annotated[str, Meta(min_length=1, max_length=ID_MAX)]


class OutcomeQuery(msgspec.Struct):
    command_id: Annotated[str, Meta(min_length=1, max_length=ID_MAX, description=(
        "The command's id: exactly one of command_id and event_id."
    ))] | None = None  # fmt: skip
    event_id: _TEXT | None = None


class HealthQuery(msgspec.Struct):
    verbose: Annotated[bool, Meta(description="Add dependencies, readiness and the auth mode.")] = (
        False
    )


class SubscribeQuery(msgspec.Struct):
    after_version: Annotated[int, Meta(ge=0, le=READ_VERSION_MAX, description=(
        "Start after this version (Last-Event-ID wins over it)."
    ))] = 0  # fmt: skip


POSITION = r"^([0-9]{1,6}:[0-9]{1,18}(,[0-9]{1,6}:[0-9]{1,18})*)?$"


class TypeSubscribeQuery(msgspec.Struct):
    after: Annotated[str, Meta(max_length=2048, pattern=POSITION, description=(
        "<partition>:<offset>,… as a previous SSE id gave it."
    ))] = ""  # fmt: skip


class InstancesQuery(msgspec.Struct):
    status: Annotated[Literal["active", "done", "stuck", "retrying"], Meta(description=(
        "Only instances of this status."
    ))] | None = None  # fmt: skip
    after: Annotated[str, Meta(min_length=1, max_length=128, description=(
        "The key to list after (a page's next_after)."
    ))] | None = None  # fmt: skip
    limit: Annotated[int, Meta(ge=1, le=PROCESS_PAGE, description="Instances per page.")] = 50


class DeadlinesQuery(msgspec.Struct):
    limit: Annotated[int, Meta(ge=1, le=PROCESS_PAGE, description="Deadlines, soonest first.")] = 50


_AGGREGATE_TYPES = r"^([a-z][a-z0-9_]{0,63}(,[a-z][a-z0-9_]{0,63})*)?$"
_EVENT_TYPES = r"^([A-Za-z][A-Za-z0-9_]{0,127}(,[A-Za-z][A-Za-z0-9_]{0,127})*)?$"
_ID_PREFIX = r"^[A-Za-z0-9_.:@-]*$"
_POSITION_TEXT = r"^[A-Za-z0-9_-]*$"


def _listed(name: str, raw: str, pattern: re.Pattern[str], what: str, e_g: str) -> tuple[str, ...]:
    """A comma-separated list of names, each of ``pattern``; InvalidInput naming the first bad
    one and the form."""
    if raw == "":
        return ()
    names = tuple(raw.split(","))
    for one in names:
        if not pattern.match(one):
            raise InvalidInput(
                f"query parameter {name}: {one[:80]!r} is not {what}; give names separated by "
                f"commas, no spaces (e.g. {name}={e_g})."
            )
    return names


_PREFIX_RE = re.compile(_ID_PREFIX.removeprefix("^").removesuffix("$") + r"\Z")


class GlobalSubscribeQuery(msgspec.Struct):
    after: Annotated[str, Meta(max_length=8192, extra_json_schema={"pattern": _POSITION_TEXT},
                               description=(
        "The position to start after, as a page's next or positions, or an SSE id, gave it "
        "(empty: the beginning); Last-Event-ID wins over it."
    ))] = ""  # fmt: skip
    aggregate_type: Annotated[str, Meta(max_length=2048,
                                        extra_json_schema={"pattern": _AGGREGATE_TYPES},
                                        description=(
        "Only events of these aggregate types (comma-separated)."
    ))] = ""  # fmt: skip
    event_type: Annotated[str, Meta(max_length=2048, extra_json_schema={"pattern": _EVENT_TYPES},
                                    description=(
        "Only events of these event types (comma-separated)."
    ))] = ""  # fmt: skip
    id_prefix: Annotated[str, Meta(max_length=128, extra_json_schema={"pattern": _ID_PREFIX},
                                   description=(
        "Only events of aggregates whose id starts with this."
    ))] = ""  # fmt: skip

    def __post_init__(self) -> None:
        self.aggregate_types()
        self.event_types()
        if not _PREFIX_RE.match(self.id_prefix):
            raise InvalidInput(
                f"query parameter id_prefix={self.id_prefix[:80]!r} holds a character no "
                "aggregate id has; use letters, digits and _ . : @ - only."
            )

    def aggregate_types(self) -> tuple[str, ...]:
        return _listed("aggregate_type", self.aggregate_type, AGGREGATE_TYPE_RE,
                       "an aggregate type name", "order,account")  # fmt: skip

    def event_types(self) -> tuple[str, ...]:
        return _listed("event_type", self.event_type, EVENT_TYPE_RE, "an event type name",
                       "OrderPlaced,OrderPaid")  # fmt: skip


class GlobalEventsQuery(GlobalSubscribeQuery):
    limit: Annotated[int, Meta(ge=1, le=MAX_PAGE, description="Events per page.")] = DEFAULT_PAGE

    def filters(self) -> dict[str, str]:
        """The page's query but ``after``: what the next page's link repeats."""
        given = {"aggregate_type": self.aggregate_type, "event_type": self.event_type,
                 "id_prefix": self.id_prefix}  # fmt: skip
        return {"limit": str(self.limit), **{k: v for k, v in given.items() if v}}


def _up_to(bound: int) -> str:
    """A pattern (unanchored) of the whole numbers from 0 to ``bound`` as the live routes read
    them (``workers.http.live.streams.whole_number``): ASCII digits, no more than ``bound``
    has (leading zeros among them), of a value at most ``bound``."""
    text = str(bound)
    found = [f"[0-9]{{1,{len(text) - 1}}}"] if len(text) > 1 else []
    for i, digit in enumerate(text):  # bound's first i digits, a lower one, then any
        if digit > "0":
            rest = len(text) - i - 1
            lower = f"[0-{int(digit) - 1}]" if digit > "1" else "0"
            found.append(text[:i] + lower + (f"[0-9]{{{rest}}}" if rest else ""))
    return "(?:" + "|".join([*found, text]) + ")"


LAST_EVENT_ID = Param(
    "Last-Event-ID", {"type": "string", "pattern": f"^ *{_up_to(READ_VERSION_MAX)}? *$"},
    description=f"resume after this version, 0 to {READ_VERSION_MAX} (wins over after_version)",
)  # fmt: skip


LAST_POSITION = Param(
    "Last-Event-ID", {"type": "string", "maxLength": 8192, "pattern": _POSITION_TEXT},
    description="resume after this position: the id of the last event taken (wins over after)",
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
GLOBAL_STREAM = _stream(
    ref("Envelope"),
    "the events, one SSE message each, its id the position "
    "after it; on a WebSocket each message is {position, event}",
)
ROOM_STREAM = _stream({"type": "object"}, "the room's changes, one SSE message each")
_WHEN = {"type": "string", "format": "date-time"}
TICKET_REQUEST: Schema = {
    "type": "object",
    "required": ["route"],
    "additionalProperties": False,
    "properties": {"route": {"type": "string",
                             "description": "a live route's path, no query "
                                            "(the body: 4 KB at most)"}},
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
    if route.startswith("/v1/processes"):
        return "processes"
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
              (Success(200, ref("Outcome")),),
              ("bad_request", "route_not_found", "not_found", "internal", *UNAVAILABLE,
               "marker_unavailable", *AUTH), query=OutcomeQuery)  # fmt: skip
SUBSCRIBE = _op("GET", V1 + "/subscribe", "subscribe",
                "Follow the aggregate's events (SSE or WebSocket)", (STREAM,),
                (*LIVE, *GONE, *AUTH), query=SubscribeQuery, headers=(LAST_EVENT_ID,))  # fmt: skip
SUBSCRIBE_TYPE = _op("GET", "/v1/{aggregate_type}/subscribe", "subscribe_type",
                     "Follow every stored event of the type (SSE or WebSocket)", (STREAM,),
                     (*LIVE, *AUTH), query=TypeSubscribeQuery)  # fmt: skip
GLOBAL = ("bad_request", "route_not_found", "unknown_aggregate_type", "position_outdated",
          "replay_failed", "internal", "stream_unavailable", *UNAVAILABLE)  # fmt: skip
"""What the global read may answer besides the door: a malformed, foreign or altered position
(400), one the log cannot continue from (410), a filter naming no enabled type (404)."""
GLOBAL_EVENTS = _op("GET", "/v1/events", "global_events",
                    "Read every stored event across aggregates from a position, a page at a time",
                    (Success(200, ref("GlobalPage"), link=True),), (*GLOBAL, *AUTH),
                    query=GlobalEventsQuery)  # fmt: skip
GLOBAL_SUBSCRIBE = _op("GET", "/v1/events/subscribe", "global_subscribe",
                       "Follow every stored event from a position (SSE or WebSocket)",
                       (GLOBAL_STREAM,), (*GLOBAL, *LIVE, *AUTH), query=GlobalSubscribeQuery,
                       headers=(LAST_POSITION,))  # fmt: skip
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
             *UNAVAILABLE, *AUTH),
            body_schema=ref("EraseRequest"), body_required=False)  # fmt: skip
TYPES = _op("GET", "/v1/types", "types", "Every aggregate type: event types, transitions, schemas",
            (Success(200, ref("TypeList")),), ("internal", *AUTH))  # fmt: skip
ONE_TYPE = _op("GET", "/v1/types/{aggregate_type}", "type", "One aggregate type",
               (Success(200, ref("TypeListing")),),
               ("unknown_aggregate_type", "bad_request", "route_not_found", "internal",
                *AUTH))  # fmt: skip
TICKETS = _op("POST", "/v1/tickets", "ticket",
              "A single-use ticket for one live route (a browser's WebSocket or EventSource)",
              (Success(201, TICKET, description="the ticket: ?ticket=… on that route, once"),),
              ("bad_request", "route_not_found", "payload_too_large", "unsupported_media_type",
               "request_timeout", "cross_origin", "marker_unavailable", "too_many_tickets",
               "internal", *AUTH),
              body_schema=TICKET_REQUEST)  # fmt: skip
PM = "/v1/processes/{process}"
PM_READ = ("bad_request", "route_not_found", "not_found", "internal", *UNAVAILABLE, *AUTH)
PROCESSES = _op("GET", "/v1/processes", "processes",
                "The process managers: their triggers, commands and instances by status (viewers)",
                (Success(200, ref("ProcessList")),), ("internal", *UNAVAILABLE, *AUTH))  # fmt: skip
PROCESS_INSTANCES = _op("GET", PM + "/instances", "process_instances",
                        "A process manager's instances, a page at a time by key (viewers)",
                        (Success(200, ref("InstancePage")),), PM_READ,
                        query=InstancesQuery)  # fmt: skip
PROCESS_INSTANCE = _op("GET", PM + "/instances/{key}", "process_instance",
                       "One instance: its state, deadlines, unsent commands, why it is stuck",
                       (Success(200, ref("ProcessInstance")),), PM_READ)  # fmt: skip
PROCESS_DEADLINES = _op("GET", PM + "/deadlines", "process_deadlines",
                        "A process manager's pending deadlines, the soonest first (viewers)",
                        (Success(200, ref("DeadlineList")),), PM_READ,
                        query=DeadlinesQuery)  # fmt: skip
PROCESS_RETRY = _op("POST", PM + "/instances/{key}/retry", "process_retry",
                    "Retry a stuck instance (operators): the pm role runs it again",
                    (Success(202, ref("ProcessInstance"), description="the retry is asked"),),
                    ("bad_request", "route_not_found", "not_found", "instance_not_stuck",
                     "console_read_only", "cross_origin", "payload_too_large",
                     "unsupported_media_type", "request_timeout", "internal", *UNAVAILABLE,
                     *AUTH), body_schema=ref("RetryRequest"), body_required=False)  # fmt: skip
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
              (Success(200, {"type": "string"}, "text/plain"),),
              ("internal",), open=True)  # fmt: skip

OPERATIONS: tuple[Declared, ...] = (
    APPEND_ROUTE, MULTI_APPEND, EVENTS, STATE, SNAPSHOT, OUTCOME, SUBSCRIBE, SUBSCRIBE_TYPE,
    GLOBAL_EVENTS, GLOBAL_SUBSCRIBE, ROOM_VIEW, ROOM_SOCKET, ERASE, TYPES, ONE_TYPE, TICKETS,
    PROCESSES, PROCESS_INSTANCES, PROCESS_INSTANCE, PROCESS_DEADLINES, PROCESS_RETRY, OPENAPI,
    HEALTH, READY, METRICS,
)  # fmt: skip
"""Every documented route."""

CHAT_PAGE = _op("GET", "/chat/{room_id}", "chat_page",
                "The chat room in a browser: an HTML page with its own script, which signs in "
                "through the console's sign-in and chats over the room's WebSocket",
                (Success(200, {"type": "string"}, "text/html", "the page"),), ("bad_request",),
                open=True, hidden=True)  # fmt: skip
PAGES: tuple[Declared, ...] = (CHAT_PAGE,)
"""Pages people open in a browser: in the HTTP reference, not in the OpenAPI document (HTML, no
data: the page carries none, so the door lets anyone have it)."""

BY_MODE = ("conflict", "read_only")
"""Placed on the appends of the domains whose mode answers them."""
_PLACED = {code for op in OPERATIONS for code in op.doc.errors} | set(BY_MODE)
UNPLACED = tuple(e.code for e in ERROR_CODES if e.code not in _PLACED | NOT_HTTP)
"""Codes of the catalogue no operation lists yet (a code added since): every API operation
documents them, so the document never leaves out an answer the fleet may give."""
