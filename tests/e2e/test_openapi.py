"""The contract a fleet serves: ``/openapi.json``, ``/v1/types``, the console's API page and
``eventfleet openapi`` all say the same, generated from the running fleet (issue 34).

Runs against the session's shared fleet (every role, ``EVENTFLEET_AUTH=jwt``).
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import aiohttp
import orjson
from openapi_spec_validator import validate

from tests.fleet import FleetProcess
from tests.tokens import bearer
from tests.waiting import within
from workers.http.edge.responses import CONTENT_SECURITY_POLICY
from workers.runtime.answers import ERROR_CODES


async def fetch(
    fleet: FleetProcess, path: str, headers: dict[str, str] | None = None
) -> tuple[int, str, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as session:
        sent = fleet.auth_headers if headers is None else headers
        async with session.get(fleet.url + path, headers=sent) as r:
            return r.status, r.content_type, dict(r.headers), await r.read()


async def served(fleet: FleetProcess) -> dict[str, Any]:
    status, kind, _, raw = await fetch(fleet, "/openapi.json")
    assert (status, kind) == (200, "application/json"), raw[:300]
    found: dict[str, Any] = orjson.loads(raw)
    return found


async def test_the_served_document_is_valid_and_documents_every_route_and_type(
    fleet: FleetProcess,
) -> None:
    doc = await served(fleet)
    validate(doc)
    paths = doc["paths"]
    for domain in ("order", "account", "chat_room"):
        for route in ("events", "state", "snapshot", "outcome", "subscribe"):
            assert f"/v1/{domain}/{{aggregate_id}}/{route}" in paths, (domain, route)
        assert f"/v1/{domain}/subscribe" in paths
    for route in ("/v1/rooms/{room_id}/messages", "/v1/rooms/{room_id}/ws", "/v1/types",
                  "/v1/types/{aggregate_type}", "/v1/subjects/{subject}/erase", "/healthz",
                  "/readyz", "/metrics", "/openapi.json"):  # fmt: skip
        assert route in paths, route
    assert not [p for p in paths if p.startswith(("/console", "/chat/"))]  # pages, not API
    shipped = doc["components"]["schemas"]["order.OrderShipped"]
    assert shipped["required"] == ["carrier"] and shipped["properties"]["carrier"]["maxLength"]
    sent = doc["components"]["schemas"]["chat_room.MessageSent"]["properties"]
    assert sent["content"]["x-personal"] is True
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert {e["code"] for e in doc["x-error-codes"]} == {e.code for e in ERROR_CODES}


async def test_the_document_is_behind_the_door_like_the_api(fleet: FleetProcess) -> None:
    for headers in ({}, bearer("not-a-token")):
        status, kind, _, raw = await fetch(fleet, "/openapi.json", headers)
        assert (status, kind) == (401, "application/json"), raw[:300]
        assert orjson.loads(raw)["error"] == "unauthenticated"


async def test_the_types_list_each_types_event_types_transitions_and_schemas(
    fleet: FleetProcess,
) -> None:
    status, _, _, raw = await fetch(fleet, "/v1/types")
    assert status == 200
    types = {t["aggregate_type"]: t for t in orjson.loads(raw)["types"]}
    assert sorted(types) == ["account", "chat_room", "order", "shipment"]
    order = types["order"]["event_types"]
    assert order["OrderPlaced"]["allowed_after"]["opens_aggregate"] is True
    assert order["OrderShipped"]["allowed_after"]["after"] == ["OrderPaid"]
    assert order["OrderShipped"]["data"]["required"] == ["carrier"]
    assert types["account"]["mode"] == "sync"
    status, _, _, raw = await fetch(fleet, "/v1/types/order")
    assert status == 200 and orjson.loads(raw) == types["order"]


async def test_an_unknown_or_malformed_type_is_a_clear_4xx(fleet: FleetProcess) -> None:
    status, _, _, raw = await fetch(fleet, "/v1/types/ordr")
    body = orjson.loads(raw)
    assert (status, body["error"]) == (404, "unknown_aggregate_type"), body
    assert "did you mean 'order'?" in body["message"] and "enabled: account" in body["message"]
    for bad in ("Order", "x" * 65, "o%20r"):
        status, _, _, raw = await fetch(fleet, f"/v1/types/{bad}")
        body = orjson.loads(raw)
        assert (status, body["error"]) == (400, "bad_request"), (bad, body)
        assert "must match" in body["message"]
    for path in ("/v1/types?x=1&x=2", "/v1/order/o-1/state?at_version=1&at_version=2"):
        status, _, _, raw = await fetch(fleet, path)  # one value per parameter
        assert status == 400 and "given 2 times; give each" in orjson.loads(raw)["message"]


async def test_the_console_renders_the_document_without_script_or_cdn(fleet: FleetProcess) -> None:
    status, kind, headers, raw = await fetch(fleet, "/console/api")
    page = raw.decode()
    assert (status, kind) == (200, "text/html"), page[:300]
    assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "<script" not in page and "http://" not in page and "https://" not in page
    for shown in ('id="operations"', "/v1/order/{aggregate_id}/events", 'id="errors"',
                  "transition_rejected", 'id="type-order.OrderShipped"',
                  'id="personal-chat_room.MessageSent"', 'href="/console/api.json"'):  # fmt: skip
        assert shown in page, shown
    for table in ("operations", "errors", "security"):  # prose with code spans, shown as code
        cells = page.split(f'id="{table}"', 1)[1].split("</table>", 1)[0]
        assert "`" not in cells, (table, cells[cells.index("`") - 80 :][:160])
    assert "<code>EVENTFLEET_" in page
    status, kind, _, raw = await fetch(fleet, "/console/api.json")
    assert (status, kind) == (200, "application/json")
    assert orjson.loads(raw) == await served(fleet)
    async with aiohttp.ClientSession() as session:  # a browser not signed in: to the login
        async with session.get(fleet.url + "/console/api", allow_redirects=False) as r:
            assert (r.status, r.headers["Location"]) == (303, "/console/login?next=/console/api")


async def test_the_cli_prints_the_document_the_fleet_serves(fleet: FleetProcess) -> None:
    env = {**os.environ, **fleet.env}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "workers.cli", "openapi", "--compact", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await within(process.communicate(), timeout_s=60, what="eventfleet openapi")
    assert process.returncode == 0, err.decode()
    assert orjson.loads(out) == await served(fleet)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "workers.cli", "openapi", env={**env, "EVENTFLEET_DOMAINS": "x:y"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await within(process.communicate(), timeout_s=60, what="eventfleet openapi")
    assert process.returncode == 2 and out == b""
    assert err.decode().startswith("eventfleet: error: EVENTFLEET_DOMAINS='x:y'")


PAGES = ("/console", "/chat/", "/static/")
"""Routes for people (HTML and its assets), not the API: the console documents itself."""


async def test_every_api_route_the_fleet_serves_is_in_the_document(fleet: FleetProcess) -> None:
    """The router's own list (the message of a 404) against the document's ``x-route``s: a
    route added without its entry in ``workers/http/openapi_routes.py`` fails here."""
    status, _, _, raw = await fetch(fleet, "/no-such-route")
    message = orjson.loads(raw)["message"]
    assert status == 404 and "this process serves " in message, message
    routes = message.split("this process serves ", 1)[1].rstrip(".").split(", ")
    api = {r for r in routes if r != "/" and not r.startswith(PAGES)}
    assert {"/v1/{aggregate_type}/{aggregate_id}/events", "/openapi.json", "/healthz"} <= api
    doc = await served(fleet)
    documented = {op["x-route"] for item in doc["paths"].values() for op in item.values()}
    missing = sorted(api - documented)
    assert not missing, f"served but not documented (add them to OPERATIONS): {missing}"
