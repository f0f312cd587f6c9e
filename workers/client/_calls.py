"""The API's calls without I/O: what each method sends and what its answer means.

Each call is a generator: it yields a ``Call`` (a request, before the base URL, the token and
the tries), is sent back the ``Answer`` (or thrown the error it stands for, its tries spent)
and returns the method's result; a walk over pages also yields each ``Event``. ``AsyncClient``
and ``Client`` drive the same generators over httpx's async and blocking clients.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypedDict, Unpack
from urllib.parse import quote

import msgspec
import orjson

from workers.client._base import ArgumentError
from workers.client._catalogue import NotFoundError
from workers.client._wire import Answer, Call, Op, Query, Walk, given, relay
from workers.client.models import Appended, AppendedAll, Erased, EventPage, Outcome, State
from workers.client.typed import EventData, sendable

__all__ = [
    "ReadAfter",
    "ToAppend",
    "append",
    "append_many",
    "erase",
    "events",
    "events_page",
    "outcome",
    "path_of",
    "state",
    "type_path",
]


def append(
    aggregate_type: str,
    aggregate_id: str,
    event_type: str | EventData,
    data: Mapping[str, object] | None = None,
    *,
    command_id: str | None = None,
    client_id: str | None = None,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    expected_version: int | None = None,
) -> Op[Appended]:
    """``POST /v1/{type}/{id}/events``: ``Appended`` (202 accepted, or 201 stored).

    ``expected_version``: append only if the aggregate is still at that version (0: it must
    not exist yet; ``State.version`` after a read); else ``WrongExpectedVersionError``, whose
    ``current_version`` says where it is.

    ``event_type`` and ``data``, or one generated model (``workers.client.typed``) in place of
    both, checked against its declaration before it is sent. ``command_id`` defaults to a new
    UUID made here, before the first try, so every retry (after ``outcome_unknown``, a timeout,
    a reset connection) is the same command: stored once, and answered with what became of it.
    Pass your own to make a retry across processes safe too (``Appended.command_id``).
    """
    path = path_of(aggregate_type, aggregate_id, "events")
    event_type, data = _event(aggregate_type, event_type, data)
    command_id = command_id if command_id is not None else str(uuid.uuid4())
    body = {
        "type": event_type,
        "data": dict(data or {}),
        "command_id": command_id,
        **given(
            client_id=client_id,
            correlation_id=correlation_id,
            causation_id=causation_id,
            expected_version=expected_version,
        ),
    }
    answer = yield Call("POST", path, body=_json(body))
    appended = answer.decode(Appended)
    return msgspec.structs.replace(appended, command_id=command_id, stored=answer.status == 201)


@dataclass(frozen=True, slots=True)
class ToAppend:
    """One item of ``append_many``: ``event_type`` with ``data`` (or one generated model in
    place of both) for the aggregate; ``expected_version`` as ``append``'s, for this one."""

    aggregate_type: str
    aggregate_id: str
    event_type: str | EventData
    data: Mapping[str, object] | None = None
    expected_version: int | None = None


def append_many(
    items: Sequence[ToAppend],
    *,
    command_id: str | None = None,
    client_id: str | None = None,
    correlation_id: str | None = None,
    causation_id: str | None = None,
) -> Op[AppendedAll]:
    """``POST /v1/appends``: one event to each of several aggregates of sync domains, stored
    in one transaction, all or none (``AppendedAll``, 201).

    One item per aggregate. The first item refused refuses all of them, naming it (the error's
    ``body["item"]``): a stale ``expected_version`` (``WrongExpectedVersionError``), the
    domain's rules, an async domain (``AsyncDomainError``). ``command_id`` names the whole
    request (a new UUID unless given), so a retry is answered the stored events (``duplicate``).
    """
    if not items:
        raise ArgumentError("append_many needs at least one ToAppend: the aggregates to append to.")
    entries: list[dict[str, object]] = []
    for item in items:
        path_of(item.aggregate_type, item.aggregate_id, "events")  # refused here when empty
        event_type, data = _event(item.aggregate_type, item.event_type, item.data)
        entry: dict[str, object] = {
            "aggregate_type": item.aggregate_type,
            "aggregate_id": item.aggregate_id,
            "type": event_type,
            "data": dict(data or {}),
            **given(expected_version=item.expected_version),
        }
        entries.append(entry)
    command_id = command_id if command_id is not None else str(uuid.uuid4())
    body = {
        "appends": entries,
        "command_id": command_id,
        **given(client_id=client_id, correlation_id=correlation_id, causation_id=causation_id),
    }
    answer = yield Call("POST", "/v1/appends", body=_json(body))
    return msgspec.structs.replace(answer.decode(AppendedAll), command_id=command_id)


def _json(body: Mapping[str, object]) -> bytes:
    try:
        return orjson.dumps(body)
    except TypeError as e:
        raise ArgumentError(
            f"data is not JSON: {e}; send str, numbers, bool, None, lists and dicts with str keys."
        ) from e


def _event(
    aggregate_type: str, event_type: str | EventData, data: Mapping[str, object] | None
) -> tuple[str, Mapping[str, object] | None]:
    if not isinstance(event_type, EventData):
        if not event_type:
            raise ArgumentError("event_type is empty; name one of the domain's event types.")
        return event_type, data
    if data is not None:
        raise ArgumentError(f"{event_type.event_type} is a model: it is the data; pass no data.")
    if event_type.aggregate_type != aggregate_type:
        raise ArgumentError(
            f"{event_type.event_type} is an event of {event_type.aggregate_type!r}, not of "
            f"{aggregate_type!r}; append it to a {event_type.aggregate_type}."
        )
    return event_type.event_type, sendable(event_type)


class ReadAfter(TypedDict, total=False):
    """Read your writes, on ``state``, ``events_page`` and ``events``: the fleet waits up to
    ``wait_ms`` until ``min_version`` (or the event of ``command_id``, an append's) is stored;
    ``NotYetStoredError`` at the bound, ``RefusedError`` when the store refused that command."""

    min_version: int | None
    command_id: str | None
    wait_ms: int | None


def state(
    aggregate_type: str,
    aggregate_id: str,
    *,
    at_version: int | None = None,
    as_of: datetime | str | None = None,
    **read_after: Unpack[ReadAfter],
) -> Op[State]:
    """``GET .../state``: the state replayed now, ``at_version`` or ``as_of`` (an aware
    datetime, sent as the same moment in UTC; a string is sent as is and must be UTC, ending
    ``Z`` or ``+00:00``); ``min_version``, ``command_id`` and ``wait_ms`` read your writes
    (``ReadAfter``)."""
    query = _read_after(read_after)
    if at_version is not None:
        query["at_version"] = str(at_version)
    if as_of is not None:
        query["as_of"] = _iso(as_of)
    path = path_of(aggregate_type, aggregate_id, "state")
    answer = yield Call("GET", path, query, wait_ms=read_after.get("wait_ms"))
    return answer.decode(State)


def events_page(
    aggregate_type: str,
    aggregate_id: str,
    *,
    after_version: int = 0,
    limit: int = 100,
    **read_after: Unpack[ReadAfter],
) -> Op[EventPage]:
    """``GET .../events``: one page of at most ``limit`` (1-1000) events after
    ``after_version``, in version order; ``more`` and ``next_after_version`` name the next.
    ``min_version``, ``command_id`` and ``wait_ms`` read your writes (``ReadAfter``)."""
    query = _read_after(read_after) | {"after_version": str(after_version), "limit": str(limit)}
    path = path_of(aggregate_type, aggregate_id, "events")
    answer = yield Call("GET", path, query, wait_ms=read_after.get("wait_ms"))
    return answer.decode(EventPage)


def events(
    aggregate_type: str,
    aggregate_id: str,
    *,
    after_version: int = 0,
    page_size: int = 100,
    **read_after: Unpack[ReadAfter],
) -> Walk:
    """Every event after ``after_version``, page after page until ``more`` is false: each
    exactly once, in version order, also while events are appended. The read-your-writes
    arguments (``ReadAfter``) apply to the first page."""
    path_of(aggregate_type, aggregate_id, "events")  # refused now, not at the first page
    _read_after(read_after)
    first = events_page(
        aggregate_type, aggregate_id, after_version=after_version, limit=page_size, **read_after
    )
    return _walk(first, aggregate_type, aggregate_id, page_size)


def _walk(page_op: Op[EventPage], aggregate_type: str, aggregate_id: str, size: int) -> Walk:
    while True:
        page = yield from relay(page_op)
        yield from page.events
        if not page.more:
            return
        page_op = events_page(
            aggregate_type, aggregate_id, limit=size, after_version=page.next_after_version
        )


def outcome(
    aggregate_type: str,
    aggregate_id: str,
    *,
    command_id: str | None = None,
    event_id: str | None = None,
) -> Op[Outcome]:
    """``GET .../outcome``: what became of a command (or event); ``Outcome.outcome`` is
    ``none`` when nothing of it is known (the fleet's 404 with ``outcome: none``)."""
    if (command_id is None) == (event_id is None):
        raise ArgumentError("outcome() takes exactly one of command_id or event_id.")
    query = given(command_id=command_id, event_id=event_id)
    call = Call("GET", path_of(aggregate_type, aggregate_id, "outcome"), query)
    try:
        answer = yield call
    except NotFoundError as e:
        if e.body.get("outcome") != "none":
            raise
        return Answer(call, e.status, orjson.dumps(dict(e.body))).decode(Outcome)
    return answer.decode(Outcome)


def erase(subject: str, *, operator: str | None = None) -> Op[Erased]:
    """``POST /v1/subjects/{subject}/erase``: crypto-shred a subject's personal data (an
    operator action). Again: the first erasure, ``already_erased`` true."""
    if not subject:
        raise ArgumentError("subject is empty; name the subject whose data to erase.")
    path = f"/v1/subjects/{quote(subject, safe='')}/erase"
    answer = yield Call("POST", path, body=orjson.dumps(given(operator=operator)))
    return answer.decode(Erased)


def path_of(aggregate_type: str, aggregate_id: str, tail: str) -> str:
    if aggregate_type and not aggregate_id:  # an empty type is refused by type_path first
        raise ArgumentError(f"aggregate_id is empty; name the {aggregate_type} to use.")
    return type_path(aggregate_type, f"{quote(aggregate_id, safe='')}/{tail}")


def type_path(aggregate_type: str, tail: str) -> str:
    if not aggregate_type:
        raise ArgumentError("aggregate_type is empty; name a domain (e.g. 'order').")
    return f"/v1/{quote(aggregate_type, safe='')}/{tail}"


def _read_after(read_after: ReadAfter) -> Query:
    unknown = sorted(read_after.keys() - ReadAfter.__annotations__.keys())
    if unknown:
        raise ArgumentError(
            f"no argument {unknown[0]!r}; a read waits with min_version, command_id and wait_ms."
        )
    query: Query = {}
    if (min_version := read_after.get("min_version")) is not None:
        query["min_version"] = str(min_version)
    if (command_id := read_after.get("command_id")) is not None:
        query["command_id"] = command_id
    if (wait_ms := read_after.get("wait_ms")) is not None:
        if not query:
            raise ArgumentError("wait_ms needs min_version or command_id: what to wait for.")
        query["wait_ms"] = str(wait_ms)
    return query


def _iso(moment: datetime | str) -> str:
    if isinstance(moment, str):
        return moment
    if moment.tzinfo is None:
        raise ArgumentError(
            f"as_of {moment!r} has no time zone; pass an aware datetime (e.g. tzinfo=UTC)."
        )
    # The server takes UTC only (Z or +00:00): the same moment, in UTC.
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
