"""The door resolves the aggregate of every read route from its declaration: a domain query's
``aggregate_param``, the ``{aggregate_type}/{aggregate_id}`` of the fleet's own routes. Served
by a real aiohttp server with the door's check as its middleware."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from snapshot_rules.access import Access
from snapshot_rules.domain import Domain, Domains, event
from snapshot_rules.queries import Query, QueryAnswer, QueryContext
from topics.envelope import Actor
from topics.errors import Forbidden
from workers.http.routes import read_access


async def nothing(
    context: QueryContext, params: Mapping[str, str], query: Mapping[str, str]
) -> QueryAnswer:
    return QueryAnswer(200, {})


CALLS: list[str | None] = []


def owner_reads(actor: Actor, aggregate_id: str | None) -> bool:
    CALLS.append(aggregate_id)
    return aggregate_id is not None and aggregate_id.startswith(f"{actor.principal}-")


BOARD = Domain(
    name="board",
    events={"Pinned": event()},
    reducer=lambda state, e: state,
    queries=(
        Query("/v1/teams/{team}/boards/{board}", nothing, aggregate_param="board"),
        Query("/v1/boards/{board_id}/cards", nothing),  # inferred: the only parameter
        Query("/v1/leaderboard", nothing),  # about no single board
    ),
    access=Access(read=owner_reads),
)


@dataclass
class FakeRuntime:
    domains: Domains


@dataclass
class FakeFleet:
    runtime: FakeRuntime = field(default_factory=lambda: FakeRuntime(Domains([BOARD])))


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    authorize = read_access(FakeFleet())  # type: ignore[arg-type]

    @web.middleware
    async def door(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            authorize(request, Actor(request.headers["X-Who"]))
        except Forbidden as e:
            return web.json_response({"reason": e.reason, "message": str(e)}, status=403)
        response: web.StreamResponse = await handler(request)
        return response

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({})

    app = web.Application(middlewares=[door])
    for query in BOARD.queries:
        app.router.add_get(query.path, ok)
    app.router.add_get("/v1/{aggregate_type}/subscribe", ok)
    events = app.router.add_resource("/v1/{aggregate_type}/{aggregate_id}/events")
    events.add_route("GET", ok)
    events.add_route("POST", ok)
    async with TestServer(app) as running:
        yield running


async def call(server: TestServer, who: str, path: str, method: str = "GET") -> tuple[int, Any]:
    CALLS.clear()
    async with aiohttp.ClientSession() as session:
        url = server.make_url(path)
        async with session.request(method, url, headers={"X-Who": who}) as r:
            return r.status, await r.json()


@pytest.mark.parametrize(
    ("path", "seen"),
    [
        ("/v1/teams/ops/boards/alice-1", "alice-1"),  # the declared parameter, not the team
        ("/v1/boards/alice-1/cards", "alice-1"),
        ("/v1/board/alice-1/events", "alice-1"),
    ],
)
async def test_a_route_about_one_aggregate_hands_the_rule_its_id(
    server: TestServer, path: str, seen: str
) -> None:
    assert await call(server, "alice", path) == (200, {})
    assert CALLS == [seen]
    status, body = await call(server, "bob", path)
    assert (status, body["reason"]) == (403, "read_refused") and CALLS == [seen]
    assert body["message"] == f"bob may not read board {seen}."


async def test_a_route_about_no_single_aggregate_hands_the_rule_none(server: TestServer) -> None:
    for path in ("/v1/leaderboard", "/v1/board/subscribe"):
        status, body = await call(server, "alice", path)
        assert (status, body["reason"]) == (403, "read_refused") and CALLS == [None], path
        assert body["message"] == "alice may not read board aggregates."


async def test_a_write_or_another_types_route_asks_no_read_rule(server: TestServer) -> None:
    assert await call(server, "bob", "/v1/board/alice-1/events", "POST") == (200, {})
    assert await call(server, "bob", "/v1/order/alice-1/events") == (200, {})  # not served here
    assert CALLS == []
