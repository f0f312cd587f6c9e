"""Tickets on the in-memory store with a moving clock: issued bound to a principal, a route and
its credential's expiry; every bad presentation refused with its reason, spending nothing; a
live connection's batches end at the credential's expiry, never inside a batch."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from tests.clock import Clock
from topics.envelope import Actor
from topics.errors import Forbidden, InvalidInput, Unauthenticated
from workers.adapters.memory import MemoryTicketStore
from workers.http.bodies import UnsupportedMediaType, is_json
from workers.http.edge.request import Request
from workers.http.live.transports import CredentialExpired, Expiring, close_reason
from workers.http.tickets import (
    MAX_TICKET_CHARS,
    TicketRecord,
    Tickets,
    digest_of,
    live_route,
    read_route,
)
from workers.ports import TicketStore
from workers.runtime.answers import failure

ALICE = Actor("alice", ("moderator",))
ROUTE = "/v1/rooms/lobby/ws"


def tickets(
    clock: Clock, store: MemoryTicketStore | None = None
) -> tuple[Tickets, MemoryTicketStore]:
    kept = store or MemoryTicketStore(clock=clock)

    async def opened() -> TicketStore:
        return kept

    return Tickets(opened, ttl_s=30, clock=clock), kept


@pytest.mark.parametrize("route", [
    "/v1/rooms/lobby/ws", "/v1/rooms/lobby/subscribe", "/v1/order/o-1/subscribe",
    "/v1/order/subscribe", "/v1/chat_room/r:1@x/subscribe",
])  # fmt: skip
def test_live_routes_are_ticketed(route: str) -> None:
    assert live_route(route) == route


@pytest.mark.parametrize("route", [
    "", "/", "/v1/order/o-1/events", "/v1/order/o-1/state", "/v1/tickets", "/console",
    "/v1/order/o-1/subscribe?after_version=1", "/v1/order/../subscribe", "/v1//subscribe",
    "/v1/Order/o-1/subscribe", "/v1/rooms/lobby/ws/", "v1/rooms/lobby/ws", "/v1/rooms/a b/ws",
    "/v1/order/" + "o" * 200 + "/subscribe", "/v1/rooms/lobby/ws" + "x" * 600, None, 7, ["/v1"],
])  # fmt: skip
def test_anything_else_is_not(route: object) -> None:
    with pytest.raises(InvalidInput, match="live route"):
        live_route(route)


def ticket_request(content_type: str | None, body: bytes) -> tuple[Request, list[int]]:
    """A ``POST /v1/tickets`` sending ``body`` as ``content_type``, and how often it was read."""
    headers = [(b"content-length", str(len(body)).encode())]
    if content_type is not None:
        headers.append((b"content-type", content_type.encode()))
    scope = {"type": "http", "method": "POST", "path": "/v1/tickets", "headers": headers}
    reads: list[int] = []

    async def receive() -> dict[str, object]:
        reads.append(1)
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, object]) -> None:
        raise AssertionError(f"nothing is sent while reading: {message}")

    return Request(scope, receive, send), reads


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/vnd.eventfleet+json",
    ],
)
async def test_a_ticket_request_is_json_as_on_every_json_route(content_type: str) -> None:
    assert is_json(content_type)
    request, _ = ticket_request(content_type, b'{"route": "%s"}' % ROUTE.encode())
    assert await read_route(request, within_s=1.0) == ROUTE


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonx",
        "application/+json",
        "",
        None,
    ],
)
async def test_a_ticket_request_of_another_type_is_415_and_not_read(
    content_type: str | None,
) -> None:
    request, reads = ticket_request(content_type, b'{"route": "%s"}' % ROUTE.encode())
    with pytest.raises(UnsupportedMediaType) as refused:
        await read_route(request, within_s=1.0)
    answer = failure(refused.value)
    assert (answer.status, answer.body["error"]) == (415, "unsupported_media_type")
    assert "Content-Type: application/json" in str(answer.body["message"]) and reads == []


async def test_a_ticket_is_bound_to_its_principal_route_and_credential() -> None:
    clock = Clock(1_000_000.0)
    issuer, store = tickets(clock)
    ticket, record = await issuer.issue(ALICE, ROUTE, clock.now + 10)
    assert len(ticket) == 43 and record.expires_at == clock.now + 10  # the credential's, sooner
    assert (record.principal, record.roles, record.route) == ("alice", ("moderator",), ROUTE)
    kept = await store.find(digest_of(ticket))
    assert kept is not None and ticket.encode() not in kept  # the store holds no ticket
    assert TicketRecord.load(kept) == record
    _, lasting = await issuer.issue(ALICE, ROUTE, None)
    assert lasting.expires_at == clock.now + 30 and lasting.credential_expires_at is None
    redeemed = await issuer.redeem([ticket], method="GET", path=ROUTE, holder=ALICE)
    assert redeemed == record


async def test_every_bad_presentation_is_refused_and_spends_nothing() -> None:
    clock = Clock(1_000_000.0)
    issuer, _ = tickets(clock)
    ticket, _ = await issuer.issue(ALICE, ROUTE, None)
    bad: list[tuple[list[str], str, str, Actor | None, type[Exception], str]] = [
        ([], "GET", ROUTE, None, Unauthenticated, "missing_ticket"),
        ([""], "GET", ROUTE, None, Unauthenticated, "missing_ticket"),
        ([ticket, ticket], "GET", ROUTE, None, Unauthenticated, "malformed_ticket"),
        (["A" * (MAX_TICKET_CHARS + 1)], "GET", ROUTE, None, Unauthenticated, "ticket_too_large"),
        (["abc$%"], "GET", ROUTE, None, Unauthenticated, "malformed_ticket"),
        (["\x00" + ticket], "GET", ROUTE, None, Unauthenticated, "malformed_ticket"),
        ([ticket[:-1] + ("A" if ticket[-1] != "A" else "B")], "GET", ROUTE, None,
         Unauthenticated, "unknown_ticket"),
        ([ticket], "GET", "/v1/rooms/other/ws", None, Forbidden, "ticket_other_route"),
        ([ticket], "POST", ROUTE, None, Forbidden, "ticket_other_route"),
        ([ticket], "GET", ROUTE, Actor("bob", ()), Forbidden, "ticket_other_principal"),
    ]  # fmt: skip
    for sent, method, path, holder, error, reason in bad:
        with pytest.raises(error) as e:
            await issuer.redeem(sent, method=method, path=path, holder=holder)
        assert e.value.reason == reason, (sent, reason)  # type: ignore[attr-defined]
        assert str(e.value).endswith("."), str(e.value)
    await issuer.redeem([ticket], method="GET", path=ROUTE)  # still good: nothing was spent
    with pytest.raises(Unauthenticated) as used:
        await issuer.redeem([ticket], method="GET", path=ROUTE)
    assert used.value.reason == "ticket_used"


async def test_a_ticket_expires_and_is_then_refused_without_being_spent() -> None:
    clock = Clock(1_000_000.0)
    issuer, store = tickets(clock)
    ticket, _ = await issuer.issue(ALICE, ROUTE, None)
    clock.now += 30
    with pytest.raises(Unauthenticated) as e:
        await issuer.redeem([ticket], method="GET", path=ROUTE)
    assert e.value.reason == "ticket_expired"
    assert await store.spend(digest_of(ticket), keep_s=1) is True  # was not spent
    clock.now += 400  # long past: the record is forgotten
    with pytest.raises(Unauthenticated) as gone:
        await issuer.redeem([ticket], method="GET", path=ROUTE)
    assert gone.value.reason == "unknown_ticket"


async def test_one_redemption_wins_among_racing_processes() -> None:
    clock = Clock(1_000_000.0)
    store = MemoryTicketStore(clock=clock)
    first, _ = tickets(clock, store)
    second, _ = tickets(clock, store)  # another process, the same Redis
    ticket, _ = await first.issue(ALICE, ROUTE, None)
    outcomes = await asyncio.gather(
        *(t.redeem([ticket], method="GET", path=ROUTE) for t in (first, second) * 5),
        return_exceptions=True,
    )
    assert sum(isinstance(o, TicketRecord) for o in outcomes) == 1
    assert all(o.reason == "ticket_used" for o in outcomes if isinstance(o, Unauthenticated))


async def batches(gate: asyncio.Event) -> AsyncGenerator[list[Any], None]:
    yield ["one", "two"]
    await gate.wait()  # idle: nothing more comes
    yield ["three"]


async def test_batches_end_at_the_deadline_between_batches() -> None:
    gate = asyncio.Event()
    source = batches(gate)
    got: list[Any] = []
    with pytest.raises(CredentialExpired, match="sign in again"):
        async for batch in Expiring(source, time.time() + 0.2):
            got += batch
    assert got == ["one", "two"]
    await source.aclose()
    with pytest.raises(CredentialExpired):  # already past: before anything is read
        await Expiring(batches(gate), time.time() - 1).__anext__()


async def test_no_deadline_never_expires() -> None:
    gate = asyncio.Event()
    gate.set()
    got: list[Any] = [b async for b in Expiring(batches(gate), None)]
    assert got == [["one", "two"], ["three"]]


def test_a_close_reason_names_the_position_within_123_bytes() -> None:
    assert close_reason({"after_version": 12}) == b"credential_expired after_version=12"
    long = {"after": ",".join(f"{p}:{10**9}" for p in range(64))}
    assert close_reason(long) == b"credential_expired"
