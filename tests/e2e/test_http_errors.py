"""Every HTTP error is JSON of one shape, one code per cause, naming the fix (issue 15).

Runs against the shared end-to-end fleet: the router's 404/405, broken and oversized bodies,
unknown aggregate types on every query route, sync-mode refusals, ``as_of`` whose ``+`` became a
space, ``at_version`` past the newest version or given with ``as_of``, and the happy paths next
to them answering as before.
"""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import orjson

from tests.e2e.raw_http import chunked, post_head, raw_http
from tests.fleet import FleetProcess
from workers.runtime.answers import ERROR_CODES

CODES = {entry.code: entry.status for entry in ERROR_CODES}


async def call(fleet: FleetProcess, method: str, path: str) -> tuple[int, dict[str, str], Any]:
    """One request; the status, the headers and the body, which must be JSON."""
    async with aiohttp.ClientSession() as session:
        async with session.request(method, fleet.url + path, headers=fleet.auth_headers) as r:
            raw = await r.read()
            assert r.content_type == "application/json", (method, path, r.status, raw)
            return r.status, dict(r.headers), orjson.loads(raw)


def assert_error(status: int, body: Any, expected_status: int, code: str) -> None:
    """Our error shape, with a registered code answered with its one status."""
    assert (status, body["error"]) == (expected_status, code), body
    assert CODES[code] == status
    assert isinstance(body["message"], str) and body["message"].endswith("."), body


async def open_account(fleet: FleetProcess, deposits: int) -> str:
    """A sync-mode account with 1 + ``deposits`` events, stored once each answer is 201."""
    account = f"err-{uuid.uuid4().hex[:8]}"
    path = f"/v1/account/{account}/events"
    status, _ = await fleet.post(path, {"type": "AccountOpened", "data": {"owner": "ann"}})
    assert status == 201
    for amount in range(1, deposits + 1):
        status, _ = await fleet.post(path, {"type": "MoneyDeposited", "data": {"amount": amount}})
        assert status == 201
    return account


async def test_unknown_routes_answer_json_listing_the_routes(fleet: FleetProcess) -> None:
    for path in ("/nope", "/v1/order/o1/events/", "/v1/order/o1/history"):
        status, _, body = await call(fleet, "GET", path)
        assert_error(status, body, 404, "route_not_found")
        assert f"GET {path}" in body["message"]
        assert "/v1/{aggregate_type}/{aggregate_id}/state" in body["message"]


async def test_wrong_methods_answer_json_with_the_allowed_methods(fleet: FleetProcess) -> None:
    cases = [
        ("DELETE", "/v1/order/o1/events", ["GET", "HEAD", "POST"]),
        ("PUT", "/v1/order/o1/state", ["GET", "HEAD"]),
        ("POST", "/healthz", ["GET", "HEAD"]),
        ("POST", "/v1/rooms/r1/messages", ["GET", "HEAD"]),
    ]
    for method, path, allowed in cases:
        status, headers, body = await call(fleet, method, path)
        assert_error(status, body, 405, "method_not_allowed")
        assert body["allowed_methods"] == allowed
        assert sorted(headers["Allow"].split(",")) == allowed
        assert f"{method} is not allowed on {path}; use {' or '.join(allowed)}." == body["message"]


async def test_an_unknown_aggregate_type_is_one_code_on_every_route(fleet: FleetProcess) -> None:
    for route in ("events", "snapshot", "state", "state?at_version=1", "outcome?command_id=c1"):
        status, _, body = await call(fleet, "GET", f"/v1/widget/w1/{route}")
        assert_error(status, body, 404, "unknown_aggregate_type")
        assert "'widget'" in body["message"] and "enabled: account" in body["message"]
    status, body = await fleet.post("/v1/widget/w1/events", {"type": "Made", "data": {}})
    assert_error(status, body, 404, "unknown_aggregate_type")
    # A known type with nothing stored is not_found on each route, naming what to check.
    hints = {"events": "check the id", "snapshot": "GET .../state", "state": "check the id"}
    for route, hint in hints.items():
        status, _, body = await call(fleet, "GET", f"/v1/order/none-{uuid.uuid4().hex[:6]}/{route}")
        assert_error(status, body, 404, "not_found")
        assert hint in body["message"], body


async def test_sync_refusals_carry_no_misleading_allowed_list(fleet: FleetProcess) -> None:
    account = await open_account(fleet, deposits=1)
    path = f"/v1/account/{account}/events"
    status, body = await fleet.post(path, {"type": "MoneyWithdrawn", "data": {"amount": 50}})
    assert_error(status, body, 409, "transition_rejected")
    assert body["current"] == "MoneyDeposited" and "allowed" not in body, body
    assert "overdraw the balance of 1" in body["message"]
    # The async mode's refusals by declared transitions still list what the type may follow.
    order = f"err-o-{uuid.uuid4().hex[:8]}"
    status, body = await fleet.post(
        f"/v1/order/{order}/events", {"type": "OrderPaid", "data": {"amount": 1}}
    )
    assert_error(status, body, 409, "transition_rejected")
    assert body["current"] is None and body["allowed"] == ["OrderPlaced"]


async def test_a_plus_that_became_a_space_is_named_with_the_fix(fleet: FleetProcess) -> None:
    account = await open_account(fleet, deposits=1)
    for path in (
        f"/v1/account/{account}/state?as_of=2099-01-01T00:00:00+00:00",
        f"/v1/account/{account}/state?as_of=2099-01-01T00:00:00.5+0000",
        "/v1/rooms/r1/messages?source=replay&as_of=2099-01-01T00:00:00+00:00",
    ):
        status, _, body = await call(fleet, "GET", path)
        assert_error(status, body, 400, "bad_request")
        message = body["message"]
        assert "space where its UTC offset's '+' was" in message, message
        assert "%2B" in message and "2099-01-01T00:00" in message and "Z)." in message
    # Encoded, or with Z, the same moment answers.
    for moment in ("2099-01-01T00:00:00%2B00:00", "2099-01-01T00:00:00Z"):
        status, _, body = await call(fleet, "GET", f"/v1/account/{account}/state?as_of={moment}")
        assert status == 200 and body["version"] == 2, body
    path = f"/v1/account/{account}/state?as_of=2000-01-01T00:00:00Z"
    status, _, body = await call(fleet, "GET", path)
    assert_error(status, body, 404, "not_found")
    hint = "no events at that point (as_of 2000-01-01T00:00:00Z); ask for a later as_of"
    assert hint in body["message"], body
    status, _, body = await call(fleet, "GET", f"/v1/account/{account}/state?as_of=yesterday")
    assert_error(status, body, 400, "bad_request")
    assert body["message"].startswith("query parameter as_of: 'yesterday'")


async def test_a_version_past_the_newest_is_404_naming_the_newest(fleet: FleetProcess) -> None:
    account = await open_account(fleet, deposits=3)
    status, _, body = await call(fleet, "GET", f"/v1/account/{account}/state?at_version=99")
    assert_error(status, body, 404, "version_not_found")
    assert body["newest_version"] == 4
    assert "has 4 events, so there is no version 99; ask at_version=1 to 4" in body["message"]
    # Up to the newest, as before.
    for version, balance in ((2, 1), (4, 6)):
        path = f"/v1/account/{account}/state?at_version={version}"
        status, _, body = await call(fleet, "GET", path)
        assert (status, body["version"], body["state"]["balance"]) == (200, version, balance)
    status, _, body = await call(fleet, "GET", f"/v1/account/{account}/state")
    assert (status, body["version"]) == (200, 4)


async def test_at_version_and_as_of_together_are_refused(fleet: FleetProcess) -> None:
    account = await open_account(fleet, deposits=1)
    path = f"/v1/account/{account}/state?at_version=1&as_of=2099-01-01T00:00:00Z"
    status, _, body = await call(fleet, "GET", path)
    assert_error(status, body, 400, "bad_request")
    assert body["message"].startswith("give at_version or as_of, not both")


async def test_oversized_bodies_report_their_real_size(fleet: FleetProcess) -> None:
    port = int(fleet.env["EVENTFLEET_HTTP_PORT"])
    limit = 64 * 1024
    body = b'{"type":"OrderPlaced","data":{"note":"' + b"x" * (70 * 1024) + b'"}}'
    for parts in (
        [body],
        [body[:1000], body[1000:]],
        [body[i : i + 4096] for i in range(0, len(body), 4096)],
    ):
        head = post_head("/v1/order/big-1/events", Transfer_Encoding="chunked")
        status, answer = await raw_http(port, head, chunked(*parts))
        assert_error(status, answer, 413, "payload_too_large")
        assert f"the body has {len(body)} bytes; the limit is {limit} bytes" in answer["message"]
        assert str(limit + 1) not in answer["message"]
    head = post_head("/v1/order/big-1/events", Content_Length=str(len(body)))
    status, answer = await raw_http(port, head, [body])
    assert_error(status, answer, 413, "payload_too_large")
    assert f"the body has {len(body)} bytes" in answer["message"]
    # Past the bound it reads up to, it says "more than" the bound, not a number it never saw.
    huge = b"y" * (16 * limit + 100_000)
    head = post_head("/v1/order/big-2/events", Transfer_Encoding="chunked")
    status, answer = await raw_http(port, head, chunked(huge[:500_000], huge[500_000:]))
    assert_error(status, answer, 413, "payload_too_large")
    assert f"the body has more than {16 * limit} bytes" in answer["message"]
    for aggregate in ("big-1", "big-2"):
        status, _, answer = await call(fleet, "GET", f"/v1/order/{aggregate}/events")
        assert_error(status, answer, 404, "not_found")


async def test_the_happy_paths_answer_as_before(fleet: FleetProcess) -> None:
    account = await open_account(fleet, deposits=2)
    status, _, body = await call(
        fleet, "GET", f"/v1/account/{account}/events?after_version=1&limit=1"
    )
    assert status == 200 and [e["version"] for e in body["events"]] == [2]
    status, _, body = await call(fleet, "GET", f"/v1/account/{account}/state")
    assert status == 200 and body == {"version": 3, "state": body["state"]}
    assert body["state"]["balance"] == 3
    order = f"ok-{uuid.uuid4().hex[:8]}"
    status, body = await fleet.post(
        f"/v1/order/{order}/events",
        {"type": "OrderPlaced", "data": {"items": [{"sku": "a", "qty": 1, "price": 2.5}]}},
    )
    assert status == 202 and set(body) == {"event_id", "partition", "offset"}
    status, _, body = await call(fleet, "GET", "/healthz")
    assert status == 200
