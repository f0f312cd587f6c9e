"""The JSON error middleware on a real aiohttp server: aiohttp's own errors and a crash (issue 15).

The fleet's routes never make aiohttp raise 413 or 400 or crash, so this serves a small app of
routes that do, with the middleware the fleet installs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from workers.http import errors as http_errors


async def read_all(request: web.Request) -> web.Response:
    return web.Response(text=str(len(await request.read())))  # aiohttp enforces client_max_size


async def refuse(request: web.Request) -> web.Response:
    raise web.HTTPBadRequest(text="Invalid header value")


async def crash(request: web.Request) -> web.Response:
    raise RuntimeError("secret detail 42")


async def move(request: web.Request) -> web.Response:
    raise web.HTTPFound("/read")


async def unsupported(request: web.Request) -> web.Response:
    raise web.HTTPUnsupportedMediaType()


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    app = web.Application(client_max_size=1024)
    http_errors.install(app)
    app.router.add_post("/read", read_all)
    app.router.add_get("/refuse", refuse)
    app.router.add_get("/crash", crash)
    app.router.add_get("/move", move)
    app.router.add_get("/unsupported", unsupported)
    async with TestServer(app) as running:
        yield running


async def call(server: TestServer, method: str, path: str, **kw: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session:
        url = server.make_url(path)
        async with session.request(method, url, allow_redirects=False, **kw) as r:
            raw = await r.read()
            if r.status >= 400:
                assert r.content_type == "application/json", (path, r.status, raw)
                return r.status, orjson.loads(raw)
            return r.status, raw


async def test_aiohttps_own_413_and_400_are_json(server: TestServer) -> None:
    status, body = await call(server, "POST", "/read", data=b"x" * 2000)
    assert (status, body["error"]) == (413, "payload_too_large")
    assert body["message"] == "Maximum request body size 1024 exceeded; send a smaller body."
    status, body = await call(server, "POST", "/read", data=b"x" * 1000)
    assert status == 200 and body == b"1000"
    status, body = await call(server, "GET", "/refuse")
    assert (status, body) == (400, {"error": "bad_request", "message": "Invalid header value."})


async def test_a_crash_is_500_internal_json_and_the_log_keeps_the_traceback(
    server: TestServer, caplog: pytest.LogCaptureFixture
) -> None:
    status, body = await call(server, "GET", "/crash")
    assert (status, body["error"]) == (500, "internal")
    assert body["message"].startswith("GET /crash failed unexpectedly")
    assert "secret detail 42" not in body["message"]  # the traceback stays in the log
    assert any(r.exc_info and "secret detail 42" in str(r.exc_info[1]) for r in caplog.records)


async def test_redirects_pass_and_other_statuses_keep_theirs(server: TestServer) -> None:
    status, _ = await call(server, "GET", "/move")
    assert status == 302
    status, body = await call(server, "GET", "/unsupported")
    assert (status, body["error"]) == (415, "bad_request")


async def test_unknown_routes_and_methods(server: TestServer) -> None:
    status, body = await call(server, "GET", "/nope")
    assert (status, body["error"]) == (404, "route_not_found")
    assert "/read" in body["message"] and "/crash" in body["message"]
    status, body = await call(server, "GET", "/read")
    assert (status, body["error"], body["allowed_methods"]) == (405, "method_not_allowed", ["POST"])
