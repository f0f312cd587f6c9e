"""Tickets: a browser's way onto a live route under ``jwt``, where it cannot send a bearer header.

``POST /v1/tickets {"route": "/v1/rooms/lobby/ws"}`` with the bearer token (or ``POST
/console/tickets`` with the console's session cookie, from the fleet's own pages) answers
``{ticket, expires_at, …}``; ``?ticket=…`` on that route's WebSocket or SSE URL then opens one
connection as the ticket's principal. A ticket is random (256 bits), short-lived
(``EVENTFLEET_TICKET_TTL_S``), bound to its principal and its route, and single-use across the
fleet: its record is on the marker's Redis under the ticket's SHA-256 (``TicketStore``), and
redeeming it is an atomic ``SET NX`` of its spent mark, so a ticket asked at one process opens a
connection at any other, once. It carries its credential's expiry: a connection opened with it
ends when the token it was bought with would (``workers.http.live.streams``).

A refused ticket changes nothing: one presented at the wrong route, by another principal, or
malformed is not spent (only a redemption spends it). The ticket text is never logged: the
door reads it from the query, and no log line of the fleet carries a query string.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec
import orjson

from topics.envelope import AGGREGATE_ID_RE, AGGREGATE_TYPE_RE, Actor
from topics.errors import Forbidden, InvalidInput, Unauthenticated
from workers.http.bodies import json_body
from workers.http.edge.request import Request
from workers.http.edge.responses import Response, json_response
from workers.http.edge.routes import Api
from workers.ports import TicketStore
from workers.roles.command.requests import PayloadTooLarge
from workers.runtime.answers import Answer
from workers.runtime.door.auth import TICKET_PARAM
from workers.runtime.door.identity import ANONYMOUS, Credentials
from workers.runtime.door.incoming import Incoming
from workers.runtime.fleet import Fleet

TICKET_BYTES = 32
"""Random bytes of a ticket (43 characters of base64url)."""
MAX_TICKET_CHARS = 128
"""A longer ``ticket`` is refused unread (no store lookup)."""
MAX_BODY_BYTES = 4096
KEEP_AFTER_S = 300
"""A record is kept this long past its expiry, so a late ticket is told "expired", not
"unknown"; its spent mark as long."""
_TICKET_RE = re.compile(r"^[A-Za-z0-9_-]+\Z")
_CHOOSE = "ask POST /v1/tickets (or /console/tickets from the fleet's pages) for a new one"


def live_route(route: object) -> str:
    """``route`` if it is a live route a ticket may open (a path, no query); InvalidInput."""
    if not isinstance(route, str) or not 0 < len(route) <= 512:
        raise InvalidInput(
            "field 'route' must be the path of a live route, e.g. /v1/rooms/lobby/ws or "
            "/v1/order/o-1/subscribe (1 to 512 characters)."
        )
    parts = route.split("/")
    ok = False
    if len(parts) == 5 and parts[:2] == ["", "v1"] and parts[2] == "rooms":
        ok = bool(AGGREGATE_ID_RE.match(parts[3])) and parts[4] in ("ws", "subscribe")
    elif len(parts) == 5 and parts[:2] == ["", "v1"]:
        ok = bool(AGGREGATE_TYPE_RE.match(parts[2]) and AGGREGATE_ID_RE.match(parts[3]))
        ok = ok and parts[4] == "subscribe"
    elif len(parts) == 4 and parts[:2] == ["", "v1"]:
        ok = bool(AGGREGATE_TYPE_RE.match(parts[2])) and parts[3] == "subscribe"
    if not ok:
        raise InvalidInput(
            f"route {route[:80]!r} is not a live route: a ticket opens GET "
            "/v1/{type}/{id}/subscribe, /v1/{type}/subscribe, /v1/events/subscribe, "
            "/v1/rooms/{room_id}/subscribe or /v1/rooms/{room_id}/ws (the path only: put "
            "after_version or after and the ticket in the query when you connect)."
        )
    return route


@dataclass(frozen=True, slots=True)
class TicketRecord:
    """What a ticket stands for: who, where, until when, and until when its credential holds."""

    principal: str
    roles: tuple[str, ...]
    route: str
    expires_at: float
    credential_expires_at: float | None

    def dump(self) -> bytes:
        return msgspec.json.encode(self)

    @classmethod
    def load(cls, raw: bytes) -> TicketRecord:
        return msgspec.json.decode(raw, type=cls)


def digest_of(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()


class Tickets:
    """Issues and redeems tickets over a ``TicketStore`` (opened on first use)."""

    def __init__(
        self,
        store: Callable[[], Awaitable[TicketStore]],
        *,
        ttl_s: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._clock = clock

    async def issue(
        self, actor: Actor, route: str, credential_expires_at: float | None
    ) -> tuple[str, TicketRecord]:
        """A new ticket for ``actor`` on ``route`` (checked by ``live_route``), and its record."""
        now = self._clock()
        until = now + self._ttl_s
        if credential_expires_at is not None:
            until = min(until, credential_expires_at)
        record = TicketRecord(
            actor.principal, tuple(actor.roles), live_route(route), until, credential_expires_at
        )
        ticket = secrets.token_urlsafe(TICKET_BYTES)
        store = await self._store()
        await store.put(
            digest_of(ticket),
            record.dump(),
            keep_s=self._ttl_s + KEEP_AFTER_S,
            principal=actor.principal,  # its share: EVENTFLEET_TICKETS_PER_PRINCIPAL
        )
        return ticket, record

    async def redeem(
        self, sent: Sequence[str], *, method: str, path: str, holder: Actor | None = None
    ) -> TicketRecord:
        """The record of the one ticket in ``sent`` (the query's ``ticket`` values), spent now,
        for ``method path``; ``holder``: the principal the request's own credential names.

        Raises Unauthenticated (missing, malformed, too large, unknown, expired, used) or
        Forbidden (another route, another principal); nothing is spent then.
        """
        ticket = _one(sent)
        store = await self._store()
        digest = digest_of(ticket)
        raw = await store.find(digest)
        if raw is None:
            raise Unauthenticated(
                "unknown_ticket",
                f"this ticket was never issued (or expired long ago); {_CHOOSE}.",
            )
        record = TicketRecord.load(raw)
        if method != "GET" or path != record.route:
            raise Forbidden(
                "ticket_other_route",
                f"this ticket opens GET {record.route} only, not {method} {path[:200]}; {_CHOOSE} "
                "naming this route.",
            )
        if holder is not None and holder.principal != record.principal:
            raise Forbidden(
                "ticket_other_principal",
                "this ticket belongs to another principal than the request's own credential; send "
                "one or the other, and only your own tickets.",
            )
        if self._clock() >= record.expires_at:
            raise Unauthenticated(
                "ticket_expired", f"this ticket expired (it is good for seconds); {_CHOOSE}."
            )
        if not await store.spend(digest, keep_s=self._ttl_s + KEEP_AFTER_S):
            raise Unauthenticated(
                "ticket_used",
                f"this ticket was used already: each opens one connection; {_CHOOSE} for every "
                "connection (a reconnect too).",
            )
        return record


def _one(sent: Sequence[str]) -> str:
    if len(sent) > 1:
        raise Unauthenticated("malformed_ticket", "send one ticket query parameter, not several.")
    ticket = sent[0] if sent else ""
    if not ticket:
        raise Unauthenticated("missing_ticket", f"the ticket query parameter is empty; {_CHOOSE}.")
    if len(ticket) > MAX_TICKET_CHARS:
        raise Unauthenticated(
            "ticket_too_large", f"a ticket is {MAX_TICKET_CHARS} characters at most; {_CHOOSE}."
        )
    if not _TICKET_RE.match(ticket):
        raise Unauthenticated(
            "malformed_ticket", f"a ticket is base64url text (A-Z a-z 0-9 - _); {_CHOOSE}."
        )
    return ticket


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


async def read_route(request: Request, within_s: float) -> str:
    """The ``route`` of a ticket request's JSON body, read whole (within MAX_BODY_BYTES) once
    it is declared JSON as on every JSON route (``json_body``: else 415, nothing read)."""
    try:
        body = await json_body(request, MAX_BODY_BYTES, within_s)
    except PayloadTooLarge:
        raise PayloadTooLarge(
            f'a ticket request is {MAX_BODY_BYTES} bytes at most; send {{"route": …}}.'
        ) from None
    try:
        parsed = orjson.loads(bytes(body))
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict) or set(parsed) != {"route"}:
        raise InvalidInput('the body must be a JSON object with one field: {"route": "/v1/…"}.')
    return live_route(parsed["route"])


def register_tickets(fleet: Fleet, api: Api) -> Tickets:
    """``POST /v1/tickets`` and ``POST /console/tickets``, and the door's redemption hook."""
    rt = fleet.runtime
    door = fleet.door

    async def store() -> TicketStore:
        return (await rt.marks()).tickets

    tickets = Tickets(store, ttl_s=rt.settings.ticket_ttl_s)

    within_s = rt.settings.body_timeout_s

    async def issue(request: Request) -> Response:
        actor = request.actor or ANONYMOUS
        route = await read_route(request, within_s)
        ticket, record = await tickets.issue(actor, route, request.expires)
        body = {
            "ticket": ticket,
            "route": record.route,
            "principal": record.principal,
            "expires_at": _iso(record.expires_at),
            "credential_expires_at": _iso(record.credential_expires_at),
        }
        return json_response(Answer(201, body), headers={"Cache-Control": "no-store"})

    async def redeem(request: Incoming, credentials: Credentials) -> tuple[Actor, float | None]:
        holder = None
        if credentials.authorization or credentials.forwarded_user:
            holder = await door.authenticator.authenticate(credentials)
        record = await tickets.redeem(
            [request.query[TICKET_PARAM]],
            method=request.method,
            path=request.path,
            holder=holder,
        )
        return Actor(record.principal, record.roles), record.credential_expires_at

    door.redeem_ticket = redeem
    errors = ("unauthenticated", "bad_request", "payload_too_large")
    api.post(
        "/v1/tickets",
        name="issue_ticket",
        tags=("live",),
        errors=errors,
        summary="A ticket that opens one live connection from a browser.",
    )(issue)
    # The console's own pages ask here with its session cookie; the door's cross-site check
    # (every POST, every mode) keeps another site's page from minting one with that cookie.
    api.post("/console/tickets", name="issue_console_ticket", hidden=True)(issue)
    return tickets
