"""``AsyncClient``: the fleet's HTTP API over aiohttp, with retries that are safe to make."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncGenerator, Mapping
from datetime import datetime
from urllib.parse import quote

import aiohttp
import orjson

from workers.client._base import ArgumentError
from workers.client._catalogue import NotFoundError
from workers.client._transport import Query, TokenSource, Transport, parse_object
from workers.client.backoff import Backoff
from workers.client.models import Appended, Erased, Event, EventPage, Outcome, State

__all__ = ["RECONNECT", "AsyncClient", "TokenSource"]

RECONNECT = Backoff(attempts=10, first_s=0.2, max_s=10.0, budget_s=120.0)
"""A subscription's reconnects in one outage: 10 tries within two minutes."""


class AsyncClient:
    """The fleet's HTTP API for asyncio code. One per base URL, shared; close it (or use
    ``async with``) when done.

    Every request carries ``Content-Type: application/json`` and the bearer token. A failure a
    retry can help with (a 503, a 429, ``command_in_progress``, no answer at all) is retried
    within ``retry``; ``append`` always sends a command id, so its retries are the same
    command, stored at most once. Everything else raises its ``ApiError`` subclass at once.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: TokenSource | None = None,
        timeout_s: float = 10.0,
        retry: Backoff | None = None,
        reconnect: Backoff | None = None,
        idle_timeout_s: float = 60.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ArgumentError(
                f"base_url {base_url!r} must start with http:// or https:// "
                "(e.g. http://127.0.0.1:8080)."
            )
        if timeout_s <= 0 or idle_timeout_s <= 0:
            raise ArgumentError("timeout_s and idle_timeout_s must be positive numbers of seconds.")
        self.base_url = base_url.rstrip("/")
        self._http = Transport(
            self.base_url, token=token, timeout_s=timeout_s, idle_timeout_s=idle_timeout_s,
            retry=retry or Backoff(), reconnect=reconnect or RECONNECT, session=session,
        )  # fmt: skip

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connections (a session passed in is the caller's to close)."""
        await self._http.close()

    async def append(
        self,
        aggregate_type: str,
        aggregate_id: str,
        event_type: str,
        data: Mapping[str, object] | None = None,
        *,
        command_id: str | None = None,
        client_id: str | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
    ) -> Appended:
        """``POST /v1/{type}/{id}/events``: ``Appended`` (202 accepted, or 201 stored).

        ``command_id`` defaults to a new UUID made here, before the first try, so every retry
        (after ``outcome_unknown``, a timeout, a reset connection) is the same command: stored
        once, and answered with what became of it. Pass your own to make a retry across
        processes safe too (``Appended.command_id`` is the one sent).
        """
        path = _path(aggregate_type, aggregate_id, "events")
        if not event_type:
            raise ArgumentError("event_type is empty; name one of the domain's event types.")
        command_id = command_id if command_id is not None else str(uuid.uuid4())
        body: dict[str, object] = {"type": event_type, "data": dict(data or {}),
                                   "command_id": command_id}  # fmt: skip
        for name, value in (("client_id", client_id), ("correlation_id", correlation_id),
                            ("causation_id", causation_id)):  # fmt: skip
            if value is not None:
                body[name] = value
        try:
            payload = orjson.dumps(body)
        except TypeError as e:
            raise ArgumentError(f"data is not JSON: {e}; send str, numbers, bool, None, "
                                "lists and dicts with str keys.") from e  # fmt: skip
        status, answer = await self._http.call("POST", path, payload=payload)
        return Appended.from_answer(status, answer, command_id)

    async def state(
        self,
        aggregate_type: str,
        aggregate_id: str,
        *,
        at_version: int | None = None,
        as_of: datetime | str | None = None,
        min_version: int | None = None,
        command_id: str | None = None,
        wait_ms: int | None = None,
    ) -> State:
        """``GET .../state``: the state replayed now, ``at_version`` or ``as_of`` (aware
        datetime). Read your writes: ``min_version`` or ``command_id`` (of an append) makes the
        fleet wait up to ``wait_ms`` for it; ``NotYetStoredError`` at the bound,
        ``RefusedError`` when the store refused that command."""
        query = _read_after(min_version, command_id, wait_ms)
        if at_version is not None:
            query["at_version"] = str(at_version)
        if as_of is not None:
            query["as_of"] = _iso(as_of)
        path = _path(aggregate_type, aggregate_id, "state")
        _, body = await self._http.call("GET", path, query, wait_ms=wait_ms)
        return State.from_answer(body)

    async def events_page(
        self,
        aggregate_type: str,
        aggregate_id: str,
        *,
        after_version: int = 0,
        limit: int = 100,
        min_version: int | None = None,
        command_id: str | None = None,
        wait_ms: int | None = None,
    ) -> EventPage:
        """``GET .../events``: one page of at most ``limit`` (1-1000) events after
        ``after_version``, in version order; ``more`` and ``next_after_version`` name the next."""
        query = _read_after(min_version, command_id, wait_ms)
        query |= {"after_version": str(after_version), "limit": str(limit)}
        path = _path(aggregate_type, aggregate_id, "events")
        _, body = await self._http.call("GET", path, query, wait_ms=wait_ms)
        return EventPage.from_answer(body)

    def events(
        self,
        aggregate_type: str,
        aggregate_id: str,
        *,
        after_version: int = 0,
        page_size: int = 100,
        min_version: int | None = None,
        command_id: str | None = None,
        wait_ms: int | None = None,
    ) -> AsyncGenerator[Event, None]:
        """Every event after ``after_version``, page after page until ``more`` is false: each
        exactly once, in version order, also while events are appended. The read-your-writes
        arguments apply to the first page."""
        _path(aggregate_type, aggregate_id, "events")  # refuse bad ids now, not at first use
        return self._walk(aggregate_type, aggregate_id, after_version, page_size,
                          min_version, command_id, wait_ms)  # fmt: skip

    async def _walk(
        self,
        aggregate_type: str,
        aggregate_id: str,
        after: int,
        page_size: int,
        min_version: int | None,
        command_id: str | None,
        wait_ms: int | None,
    ) -> AsyncGenerator[Event, None]:
        page = await self.events_page(aggregate_type, aggregate_id, after_version=after,
                                      limit=page_size, min_version=min_version,
                                      command_id=command_id, wait_ms=wait_ms)  # fmt: skip
        while True:
            for event in page.events:
                yield event
            if not page.more:
                return
            page = await self.events_page(aggregate_type, aggregate_id,
                                          after_version=page.next_after_version, limit=page_size)  # fmt: skip

    async def outcome(
        self,
        aggregate_type: str,
        aggregate_id: str,
        *,
        command_id: str | None = None,
        event_id: str | None = None,
    ) -> Outcome:
        """``GET .../outcome``: what became of a command (or event); ``Outcome.outcome`` is
        ``none`` when nothing of it is known (the fleet's 404 with ``outcome: none``)."""
        if (command_id is None) == (event_id is None):
            raise ArgumentError("outcome() takes exactly one of command_id or event_id.")
        query: Query = {"command_id": command_id} if command_id is not None else {}
        if event_id is not None:
            query["event_id"] = event_id
        path = _path(aggregate_type, aggregate_id, "outcome")
        try:
            _, body = await self._http.call("GET", path, query)
        except NotFoundError as e:
            if e.body.get("outcome") != "none":
                raise
            return Outcome.from_answer(e.body)
        return Outcome.from_answer(body)

    async def erase(self, subject: str, *, operator: str | None = None) -> Erased:
        """``POST /v1/subjects/{subject}/erase``: crypto-shred a subject's personal data (an
        operator action). Again: the first erasure, ``already_erased`` true."""
        if not subject:
            raise ArgumentError("subject is empty; name the subject whose data to erase.")
        path = f"/v1/subjects/{quote(subject, safe='')}/erase"
        payload = orjson.dumps({"operator": operator} if operator is not None else {})
        _, body = await self._http.call("POST", path, payload=payload)
        return Erased.from_answer(body)

    def subscribe(
        self, aggregate_type: str, aggregate_id: str, *, after_version: int = 0
    ) -> AsyncGenerator[Event, None]:
        """``GET .../subscribe`` as Server-Sent Events: the stored events after
        ``after_version``, then each as it is stored, for as long as it is iterated.

        When the stream ends or breaks (a deploy drains the process, a proxy cuts it, a slow
        reader is let go), it reconnects with ``Last-Event-ID`` set to the last event it
        yielded, so nothing is skipped or repeated; waits between tries follow ``reconnect``
        (backoff with jitter, bounded: its last error is raised once spent). ``aclose()`` it (or
        iterate it inside ``contextlib.aclosing``) to end the connection at once; a generator
        only dropped is closed when it is collected.
        """
        path = _path(aggregate_type, aggregate_id, "subscribe")
        return self._subscribe(path, {"after_version": str(after_version)})

    def subscribe_type(
        self, aggregate_type: str, *, after: str = ""
    ) -> AsyncGenerator[Event, None]:
        """``GET /v1/{type}/subscribe``: every stored event of a type from ``after``
        (``partition:offset,...``; empty: each partition from its start), resumed as
        ``subscribe`` is."""
        if not aggregate_type:
            raise ArgumentError("aggregate_type is empty; name a domain (e.g. 'order').")
        path = f"/v1/{quote(aggregate_type, safe='')}/subscribe"
        return self._subscribe(path, {"after": after} if after else {})

    async def _subscribe(self, path: str, query: Query) -> AsyncGenerator[Event, None]:
        async with contextlib.aclosing(self._http.stream(path, query)) as messages:
            async for message in messages:  # aclosing: this one's aclose() ends the connection
                yield Event.from_json(parse_object(message.data))


def _path(aggregate_type: str, aggregate_id: str, tail: str) -> str:
    if not aggregate_type:
        raise ArgumentError("aggregate_type is empty; name a domain (e.g. 'order').")
    if not aggregate_id:
        raise ArgumentError(f"aggregate_id is empty; name the {aggregate_type} to use.")
    return f"/v1/{quote(aggregate_type, safe='')}/{quote(aggregate_id, safe='')}/{tail}"


def _read_after(min_version: int | None, command_id: str | None, wait_ms: int | None) -> Query:
    query: Query = {}
    if min_version is not None:
        query["min_version"] = str(min_version)
    if command_id is not None:
        query["command_id"] = command_id
    if wait_ms is not None:
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
    return moment.isoformat()
