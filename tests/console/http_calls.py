"""HTTP to the console's fleet as its tests make it: a console page fetched as the test
principal, a raw call with the headers and form a test chooses (no cookie jar, no redirects),
a bearer header for any principal and roles, and an order placed (and waited for until the
store holds it) through the API."""

from __future__ import annotations

import aiohttp
from multidict import CIMultiDict

from tests.fleet import FleetProcess, order_items
from tests.tokens import bearer


async def fetch(fleet: FleetProcess, path: str, *, follow: bool = True) -> tuple[int, str, str]:
    """(status, content type, body or Location) of a GET as the test principal."""
    async with (
        aiohttp.ClientSession(headers=fleet.auth_headers) as session,
        session.get(fleet.url + path, allow_redirects=follow) as response,
    ):
        body = await response.text()
        where = response.headers.get("Location", "") if not follow else body
        return response.status, response.content_type, where


async def call(
    fleet: FleetProcess, method: str, path: str, *, headers: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
) -> tuple[int, str, CIMultiDict[str]]:  # fmt: skip
    """(status, body, headers) of one request with exactly ``headers`` and ``form``."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        async with session.request(
            method, fleet.url + path, headers=headers, data=form, allow_redirects=False
        ) as r:
            return r.status, await r.text(), CIMultiDict(r.headers)


def as_(fleet: FleetProcess, *roles: str, sub: str = "someone") -> dict[str, str]:
    """The Authorization header of ``sub`` with ``roles``, signed by the fleet's issuer."""
    return bearer(fleet.token(sub, roles))


async def place(fleet: FleetProcess, order: str) -> None:
    """An OrderPlaced for ``order``, accepted by the API."""
    status, body = await fleet.post(
        f"/v1/order/{order}/events",
        {"type": "OrderPlaced", "data": {"items": order_items()}},
        token=fleet.token(),
    )
    assert status == 202, body


async def placed_and_stored(fleet: FleetProcess, order: str, *, paid: bool = False) -> None:
    """``order`` placed (and paid when ``paid``), waited for until its state shows it all."""
    await place(fleet, order)
    version = 1
    if paid:
        status, _ = await fleet.post(
            f"/v1/order/{order}/events", {"type": "OrderPaid", "data": {"amount": 5}},
            token=fleet.token(),
        )  # fmt: skip
        assert status == 202
        version = 2
    status, _ = await fleet.get(
        f"/v1/order/{order}/state?min_version={version}&wait_ms=20000", token=fleet.token()
    )
    assert status == 200
