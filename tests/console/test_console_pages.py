"""Console pages over HTTP: where the root leads, and console errors as console pages."""

from __future__ import annotations

import aiohttp

from tests.fleet import FleetProcess


async def fetch(fleet: FleetProcess, path: str, *, follow: bool = True) -> tuple[int, str, str]:
    """(status, content type, body or Location) of a GET."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(fleet.url + path, allow_redirects=follow) as response,
    ):
        body = await response.text()
        where = response.headers.get("Location", "") if not follow else body
        return response.status, response.content_type, where


async def test_the_root_leads_to_the_console(console_fleet: FleetProcess) -> None:
    status, _, location = await fetch(console_fleet, "/", follow=False)
    assert (status, location) == (302, "/console")
    status, kind, body = await fetch(console_fleet, "/")
    assert status == 200 and kind == "text/html" and "eventfleet" in body.lower()
    status, _, _ = await fetch(console_fleet, "/healthz")  # other routes are untouched
    assert status == 200
