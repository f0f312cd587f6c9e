"""The role matrix of every HTTP endpoint, in proxy mode: who may send, read and use the console.

The fleet trusts the proxy headers only from 127.0.0.2 (the test connects from that loopback
address as "the proxy"); the same headers from 127.0.0.1 are an attacker's. It serves the open
order domain and a guarded ``ledger`` (``tests/e2e/guarded.py``: supervisors open, clerks post,
auditors read).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from tests.fleet import FleetProcess, json_payload, order_items, running_fleet
from tests.waiting import wait_for
from workers.devtools.embedded import EmbeddedStack

PROXY = "127.0.0.2"
WHO: dict[str, tuple[str, dict[str, str]]] = {
    # name: (source address, headers)
    "nobody": (PROXY, {}),
    "forged": ("127.0.0.1", {"X-Forwarded-User": "eve", "X-Forwarded-Groups": "supervisor"}),
    "user": (PROXY, {"X-Forwarded-User": "uma"}),
    "clerk": (PROXY, {"X-Forwarded-User": "cleo", "X-Forwarded-Groups": "clerk"}),
    "supervisor": (PROXY, {"X-Forwarded-User": "sam", "X-Forwarded-Groups": "supervisor,x"}),
    "auditor": (PROXY, {"X-Forwarded-User": "aud", "X-Forwarded-Groups": "auditor"}),
    "viewer": (PROXY, {"X-Forwarded-User": "vic", "X-Forwarded-Groups": "eventfleet-viewer"}),
}


@pytest.fixture(scope="module")
async def proxied(stack: EmbeddedStack) -> AsyncIterator[FleetProcess]:
    env = {
        "EVENTFLEET_AUTH": "proxy",
        "EVENTFLEET_AUTH_TRUSTED_PROXIES": f"{PROXY}/32",
        "EVENTFLEET_DOMAINS": "tests.e2e.guarded:domains",
    }
    async with running_fleet(stack, f"acl_{uuid.uuid4().hex[:8]}", **env) as fleet:
        yield fleet


async def call(
    fleet: FleetProcess, who: str, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    source, headers = WHO[who]
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with aiohttp.ClientSession(connector=connector) as session:
        data = json_payload(orjson.dumps(body)) if body is not None else None
        async with session.request(
            method, fleet.url + path, data=data, headers=headers, allow_redirects=False
        ) as r:
            raw = await r.read()
            try:
                return r.status, orjson.loads(raw)
            except orjson.JSONDecodeError:
                return r.status, raw.decode(errors="replace")


def verdict(status: int, body: Any) -> str:
    """What the matrix records: ok, or the refusal and its reason."""
    if status in (401, 403):
        return f"{status} {body['reason']}"
    return "ok" if status < 500 else f"{status}"


EXPECTED = {
    #                     nobody,                     forged,                 user, clerk, supervisor, auditor, viewer
    "POST order":        ("401 missing_identity", "401 untrusted_proxy", "ok", "ok", "ok", "ok", "ok"),
    "GET order state":   ("401 missing_identity", "401 untrusted_proxy", "ok", "ok", "ok", "ok", "ok"),
    "POST ledger Opened": ("401 missing_identity", "401 untrusted_proxy", "403 role_required",
                           "403 role_required", "ok", "403 role_required", "403 role_required"),
    "POST ledger Posted": ("401 missing_identity", "401 untrusted_proxy", "403 role_required",
                           "ok", "ok", "403 role_required", "403 role_required"),
    **{
        f"GET ledger {route}": ("401 missing_identity", "401 untrusted_proxy", "403 read_refused",
                                "ok", "ok", "ok", "403 read_refused")
        for route in ("events", "state", "snapshot", "outcome")
    },
    "GET console":       ("401 missing_identity", "401 untrusted_proxy", "403 role_required",
                          "403 role_required", "403 role_required", "403 role_required", "ok"),
    "GET healthz":       ("ok",) * 7,
    "GET metrics":       ("ok",) * 7,
}  # fmt: skip


async def test_the_role_matrix_of_every_endpoint(proxied: FleetProcess) -> None:
    matrix: dict[str, list[str]] = {row: [] for row in EXPECTED}
    for who in WHO:
        order, ledger = f"o-{uuid.uuid4().hex[:8]}", f"l-{uuid.uuid4().hex[:8]}"
        placed = {"type": "OrderPlaced", "data": {"items": order_items()}}
        requests = {
            "POST order": ("POST", f"/v1/order/{order}/events", placed),
            "GET order state": ("GET", f"/v1/order/{order}/state", None),
            "POST ledger Opened": ("POST", f"/v1/ledger/{ledger}/events", {"type": "Opened"}),
            "POST ledger Posted": ("POST", f"/v1/ledger/{ledger}/events", {"type": "Posted"}),
            "GET ledger events": ("GET", f"/v1/ledger/{ledger}/events", None),
            "GET ledger state": ("GET", f"/v1/ledger/{ledger}/state", None),
            "GET ledger snapshot": ("GET", f"/v1/ledger/{ledger}/snapshot", None),
            "GET ledger outcome": ("GET", f"/v1/ledger/{ledger}/outcome?event_id=x", None),
            "GET console": ("GET", "/console", None),
            "GET healthz": ("GET", "/healthz", None),
            "GET metrics": ("GET", "/metrics", None),
        }
        for row, (method, path, body) in requests.items():
            matrix[row].append(verdict(*await call(proxied, who, method, path, body)))
    for row, expected in EXPECTED.items():
        assert tuple(matrix[row]) == expected, (row, dict(zip(WHO, matrix[row], strict=True)))


async def test_the_actor_comes_from_the_proxy_headers(proxied: FleetProcess) -> None:
    ledger = f"/v1/ledger/l-{uuid.uuid4().hex[:8]}"
    status, body = await call(proxied, "supervisor", "POST", ledger + "/events", {"type": "Opened"})
    assert status == 202, body

    async def stored() -> bool:
        status, body = await call(proxied, "auditor", "GET", ledger + "/events")
        return status == 200 and len(body["events"]) == 1

    await wait_for(stored, timeout_s=20, what="the ledger's first event stored")
    _, body = await call(proxied, "auditor", "GET", ledger + "/events")
    assert body["events"][0]["metadata"]["actor"] == {
        "principal": "sam",
        "roles": ["supervisor", "x"],
    }
