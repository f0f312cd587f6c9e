"""Every error the edge answers is JSON of one shape, on a real server: our errors, a route's
crash, an unknown route or method, a redirect that is no error (issue 15; now on the edge).

The fleet's routes never crash on purpose, so this serves a small Api of routes that do,
behind the edge and an open door, as the fleet serves its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from topics.errors import InvalidInput
from workers.http.edge.app import Edge
from workers.http.edge.request import Request
from workers.http.edge.responses import Redirect, Response
from workers.http.edge.routes import Api
from workers.http.edge.server import Serving
from workers.http.queries import failure
from workers.metrics import create_metrics
from workers.runtime.door.auth import Door
from workers.runtime.door.identity import Authenticator


async def read_all(request: Request) -> Response:
    return Response.text(str(len(await request.read_body(1024, 5.0))))


async def refuse(request: Request) -> Response:
    raise InvalidInput("the header is not what it must be.")


async def crash(request: Request) -> Response:
    raise RuntimeError("secret detail 42")


async def move(request: Request) -> Response:
    raise Redirect("/read", 302)


@pytest.fixture
async def server() -> AsyncIterator[str]:
    api = Api()
    api.post("/read")(read_all)
    api.get("/refuse")(refuse)
    api.get("/crash")(crash)
    api.get("/move")(move)
    serving = Serving(Edge(api, Door(Authenticator(), create_metrics()), failure), "127.0.0.1", 0)
    await serving.start()
    try:
        yield f"http://127.0.0.1:{serving.port}"
    finally:
        await serving.stop()


async def call(server: str, method: str, path: str, **kw: Any) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, server + path, allow_redirects=False, **kw) as r,
    ):
        raw = await r.read()
        if r.status >= 400:
            assert r.content_type == "application/json", (path, r.status, raw)
            return r.status, orjson.loads(raw)
        return r.status, raw


async def test_a_body_too_large_and_our_own_errors_are_json(server: str) -> None:
    status, body = await call(server, "POST", "/read", data=b"x" * 2000)
    assert (status, body["error"]) == (413, "payload_too_large")
    assert body["message"].startswith("the body has 2000 bytes; the limit is 1024 bytes")
    status, body = await call(server, "POST", "/read", data=b"x" * 1000)
    assert status == 200 and body == b"1000"
    status, body = await call(server, "GET", "/refuse")
    assert (status, body) == (
        400,
        {"error": "bad_request", "message": "the header is not what it must be."},
    )


async def test_a_crash_is_500_internal_json_and_the_log_keeps_the_traceback(
    server: str, caplog: pytest.LogCaptureFixture
) -> None:
    status, body = await call(server, "GET", "/crash")
    assert (status, body["error"]) == (500, "internal")
    assert body["message"].startswith("GET /crash failed unexpectedly")
    assert "secret detail 42" not in body["message"]  # the traceback stays in the log
    assert any(r.exc_info and "secret detail 42" in str(r.exc_info[1]) for r in caplog.records)


async def test_a_redirect_passes(server: str) -> None:
    status, _ = await call(server, "GET", "/move")
    assert status == 302


async def test_unknown_routes_and_methods(server: str) -> None:
    status, body = await call(server, "GET", "/nope")
    assert (status, body["error"]) == (404, "route_not_found")
    assert "/read" in body["message"] and "/crash" in body["message"]
    status, body = await call(server, "GET", "/read")
    assert (status, body["error"], body["allowed_methods"]) == (405, "method_not_allowed", ["POST"])
    status, body = await call(server, "GET", "/refuse?a=1&a=2")
    assert (status, body["error"]) == (400, "bad_request")
    assert "given 2 times" in body["message"]
