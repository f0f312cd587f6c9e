"""The append route skips the general middleware stack (one middleware of its own): every
check of that stack still holds on it, each refusal changes nothing, and its answers keep
their headers and shape."""

from __future__ import annotations

import uuid

import aiohttp
import orjson
import pytest

from tests.fleet import FleetProcess

pytestmark = pytest.mark.slow

PLACED = {"type": "OrderPlaced", "data": {"items": [{"sku": "tea", "qty": 1, "price": 2.5}]}}


async def send(
    fleet: FleetProcess, path: str, headers: dict[str, str], body: bytes
) -> tuple[int, dict[str, str], dict[str, object]]:
    async with aiohttp.ClientSession() as session:
        async with session.post(fleet.url + path, data=body, headers=headers) as r:
            assert r.content_type == "application/json", (r.status, await r.read())
            return r.status, dict(r.headers), orjson.loads(await r.read())


async def nothing_stored(fleet: FleetProcess, order: str) -> None:
    status, body = await fleet.get(f"/v1/order/{order}/outcome?command_id=c-1")
    assert status == 404 and body["outcome"] == "none", body


async def test_an_accepted_append_is_answered_with_its_ids_and_every_header(
    fleet: FleetProcess,
) -> None:
    order = f"o-{uuid.uuid4().hex[:8]}"
    json = {**fleet.auth_headers, "Content-Type": "application/json"}
    status, headers, body = await send(
        fleet, f"/v1/order/{order}/events", json, orjson.dumps({**PLACED, "command_id": "c-1"})
    )
    assert status == 202, body
    assert set(body) == {"event_id", "partition", "offset"}
    assert isinstance(body["partition"], int) and isinstance(body["offset"], int)
    assert uuid.UUID(str(body["event_id"])).version == 5  # derived from the command id
    assert headers["Content-Type"] == "application/json"
    for name in ("Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options"):
        assert name in headers, name
    fresh = {**PLACED}
    status, _, body = await send(fleet, f"/v1/order/{order}-2/events", json, orjson.dumps(fresh))
    assert status == 202 and uuid.UUID(str(body["event_id"])).version == 7, body


@pytest.mark.parametrize(
    ("case", "query", "headers", "expected"),
    [
        ("no token", "", {"Content-Type": "application/json"}, (401, "unauthenticated")),
        ("bad token", "", {"Authorization": "Bearer x.y.z", "Content-Type": "application/json"},
         (401, "unauthenticated")),
        ("repeated query parameter", "?a=1&a=2", None, (400, "bad_request")),
        ("cross-site page", "", {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
         (403, "cross_origin")),
        ("not JSON", "", {"Content-Type": "text/plain"}, (415, "unsupported_media_type")),
    ],
)  # fmt: skip
async def test_every_check_of_the_middleware_stack_holds_on_the_append_route(
    fleet: FleetProcess,
    case: str,
    query: str,
    headers: dict[str, str] | None,
    expected: tuple[int, str],
) -> None:
    order = f"o-{uuid.uuid4().hex[:8]}"
    sent = {**fleet.auth_headers, "Content-Type": "application/json"}
    if headers is not None:
        sent = headers if "Authorization" in headers or case == "no token" else {**sent, **headers}
    body = orjson.dumps({**PLACED, "command_id": "c-1"})
    status, answer_headers, answer = await send(
        fleet, f"/v1/order/{order}/events{query}", sent, body
    )
    assert (status, answer["error"]) == expected, (case, answer)
    if status == 401:
        assert answer_headers["WWW-Authenticate"].startswith("Bearer"), answer_headers
    await nothing_stored(fleet, order)
