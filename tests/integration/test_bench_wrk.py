"""wrk's runs count every answer outside 2xx, 3xx and 1xx too (wrk itself counts only >= 400):
a rate of such answers is refused, never printed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from workers.devtools.bench.wrk import wrk, wrk_path

STATUS = web.AppKey("status", list[int])


async def answer(request: web.Request) -> web.Response:
    await request.read()
    status = request.app[STATUS][0]
    headers = {"Location": "/elsewhere"} if 300 <= status < 400 else None
    return web.Response(status=status, body=b"{}", headers=headers)


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    wrk_path()  # the test command installs wrk; missing, this fails naming the fix
    app = web.Application()
    app[STATUS] = [202]
    app.router.add_post("/v1/order/{id}/events", answer)
    async with TestServer(app) as running:
        yield running


async def test_a_run_of_2xx_answers_is_measured(server: TestServer) -> None:
    url = str(server.make_url("")).rstrip("/")
    result = await wrk(url, connections=2, count=50, run="r", body=b"{}")
    assert result["count"] >= 50 and result["status"] == 0


@pytest.mark.parametrize("status", [303, 409])
async def test_an_answer_outside_2xx_fails_the_run(server: TestServer, status: int) -> None:
    server.app[STATUS][0] = status
    url = str(server.make_url("")).rstrip("/")
    with pytest.raises(RuntimeError, match=r"answered \d+ of \d+ requests with a non-2xx status"):
        await wrk(url, connections=2, count=20, run="r", body=b"{}")
