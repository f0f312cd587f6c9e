"""The door resolves the aggregate of every read route from its declaration: a domain query's
``aggregate_param``, the ``{aggregate_type}/{aggregate_id}`` of the fleet's own routes. Each
request is routed by the edge's own router, and the rule asked as the door asks it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from snapshot_rules.access import Access
from snapshot_rules.domain import Domain, Domains, event
from snapshot_rules.queries import Query, QueryAnswer, QueryContext
from topics.envelope import Actor
from topics.errors import Forbidden
from workers.http.edge.responses import Response
from workers.http.edge.routes import Api
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


async def ok(request: object) -> Response:
    return Response(b"{}")


@dataclass
class Asked:
    """A request as the door hands it to the rule: its method, route and parameters."""

    method: str
    route: str
    params: dict[str, str]


ROUTES = Api()
for query in BOARD.queries:
    ROUTES.get(query.path)(ok)
ROUTES.get("/v1/{aggregate_type}/subscribe")(ok)
ROUTES.get("/v1/{aggregate_type}/{aggregate_id}/events")(ok)
ROUTES.post("/v1/{aggregate_type}/{aggregate_id}/events")(ok)


async def call(who: str, path: str, method: str = "GET") -> tuple[int, Any]:
    """The rule's word on ``method path``, as the door asks it (200: let in)."""
    CALLS.clear()
    found = ROUTES.find(method, path)
    if isinstance(found, list):
        return 200, {}  # no route here: the rule is not asked
    route, params = found
    authorize = read_access(FakeFleet())  # type: ignore[arg-type]
    try:
        authorize(Asked(method, route.template, params), Actor(who))  # type: ignore[arg-type]
    except Forbidden as e:
        return 403, {"reason": e.reason, "message": str(e)}
    return 200, {}


@pytest.mark.parametrize(
    ("path", "seen"),
    [
        ("/v1/teams/ops/boards/alice-1", "alice-1"),  # the declared parameter, not the team
        ("/v1/boards/alice-1/cards", "alice-1"),
        ("/v1/board/alice-1/events", "alice-1"),
    ],
)
async def test_a_route_about_one_aggregate_hands_the_rule_its_id(path: str, seen: str) -> None:
    assert await call("alice", path) == (200, {})
    assert CALLS == [seen]
    status, body = await call("bob", path)
    assert (status, body["reason"]) == (403, "read_refused") and CALLS == [seen]
    assert body["message"] == f"bob may not read board {seen}."


async def test_a_route_about_no_single_aggregate_hands_the_rule_none() -> None:
    for path in ("/v1/leaderboard", "/v1/board/subscribe"):
        status, body = await call("alice", path)
        assert (status, body["reason"]) == (403, "read_refused") and CALLS == [None], path
        assert body["message"] == "alice may not read board aggregates."


async def test_a_write_or_another_types_route_asks_no_read_rule() -> None:
    assert await call("bob", "/v1/board/alice-1/events", "POST") == (200, {})
    assert await call("bob", "/v1/order/alice-1/events") == (200, {})  # not served here
    assert CALLS == []
