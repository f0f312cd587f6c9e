"""EVENTFLEET_OPERATOR_PORT: the probes, metrics and the console on a port of their own; the
API's port then serves no operator page (only the sign-in a browser page there needs)."""

from __future__ import annotations

import uuid

import aiohttp

from tests.fleet import FleetProcess
from tests.waiting import wait_for
from workers.devtools.embedded import EmbeddedStack, free_port


async def status_of(url: str, headers: dict[str, str] | None = None) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers=headers or {}, allow_redirects=False) as answer,
    ):
        return answer.status


async def test_operator_pages_are_on_their_own_port_and_only_there(stack: EmbeddedStack) -> None:
    operator = free_port()
    fleet = FleetProcess.for_stack(
        stack, f"ops_{uuid.uuid4().hex[:8]}", EVENTFLEET_OPERATOR_PORT=str(operator)
    )
    ops = f"http://127.0.0.1:{operator}"

    async def ready() -> bool:
        try:
            return await status_of(f"{ops}/readyz") == 200
        except (aiohttp.ClientError, OSError):
            return False

    await fleet.launch()
    try:
        await wait_for(ready, timeout_s=60, what=f"operator port ready ({fleet.log_path})")
        auth = fleet.auth_headers
        for path in ("/metrics", "/healthz", "/readyz"):
            assert await status_of(ops + path) == 200, path
            assert await status_of(fleet.url + path) == 404, path
        assert await status_of(f"{ops}/console", auth) == 200
        assert await status_of(f"{fleet.url}/console", auth) == 404
        assert await status_of(f"{fleet.url}/console/dlq", auth) == 404
        assert await status_of(f"{fleet.url}/console/login") == 200  # the chat page signs in here
        status, _ = await fleet.get("/v1/order/nothing-here/state")
        assert status == 404  # the API answers on its port: not_found, a real answer
        assert await status_of(f"{ops}/v1/order/nothing-here/state", auth) == 404
        assert await status_of(f"{ops}/openapi.json", auth) == 404
    finally:
        assert await fleet.stop() == 0, fleet.log_tail()
