"""A real browser as the attacker: headless Chromium loads a page from another origin
(``http://localhost:<other port>``, the fleet being ``http://127.0.0.1:<port>``) that posts a
``text/plain`` form and a ``no-cors`` ``fetch()`` to append and to erase, and opens the chat
WebSocket. Two fleets, operator actions on: one whose door is open (``EVENTFLEET_AUTH=none``:
whoever's browser reaches it could act), one in ``proxy`` mode behind a small identity proxy that
adds the signed-in operator's ``X-Forwarded-User``/``-Groups`` to every request it forwards (as
oauth2-proxy does for a browser whose session cookie rides along: the worst case, e.g. a sibling
subdomain, which ``SameSite`` does not stop). Only the Origin check stands between the page and
the store. Nothing may change, and the socket must be refused; the fleet's own chat page still
connects and its own requests still write.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import WSMsgType, web

from tests.fleet import FleetProcess, running_fleet
from tests.tokens import OPERATOR, VIEWER
from tests.waiting import wait_for
from workers.devtools.embedded import EmbeddedStack, free_port

pytestmark = pytest.mark.slow

REFUSED = re.compile(
    r'eventfleet_auth_refusals_total\{reason="(?:cross_site|foreign_origin|opaque_origin)",'
    r'status="403"\} (\S+)'
)


PROXY = "127.0.0.2"
HOP = frozenset(("connection", "upgrade", "transfer-encoding", "content-length", "keep-alive",
                 "x-forwarded-user", "x-forwarded-groups", "sec-websocket-key",
                 "sec-websocket-version", "sec-websocket-extensions"))  # fmt: skip


@dataclass(slots=True)
class Front:
    """Where the browser reaches a fleet: the fleet itself, or the identity proxy before it."""

    fleet: FleetProcess
    url: str
    user: str = "nobody"
    """Proxy mode: the signed-in principal the proxy names (an operator)."""

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """A script's request (no browser headers) through the front."""
        data = orjson.dumps(body) if body is not None else None
        sent = {"Content-Type": "application/json"} if data is not None else {}
        async with aiohttp.ClientSession() as session:
            async with session.request(method, self.url + path, data=data, headers=sent) as r:
                raw = await r.read()
                try:
                    return r.status, orjson.loads(raw)
                except orjson.JSONDecodeError:
                    return r.status, raw.decode(errors="replace")


async def identity_proxy(front: Front) -> web.AppRunner:
    """oauth2-proxy in miniature: forwards every request, WebSockets too, from PROXY with the
    browser's Host, Origin and Sec-Fetch-* kept, its identity headers replaced by front.user's."""
    upstream = front.fleet.url

    def forwarded(request: web.Request) -> dict[str, str]:
        kept = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
        return {**kept, "X-Forwarded-User": front.user,
                "X-Forwarded-Groups": f"{OPERATOR},{VIEWER}"}  # fmt: skip

    async def forward(request: web.Request) -> web.StreamResponse:
        connector = aiohttp.TCPConnector(local_addr=(PROXY, 0))
        async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
            if request.headers.get("Upgrade", "").lower() == "websocket":
                return await pump(request, session)
            body = await request.read()
            async with session.request(
                request.method, upstream + request.path_qs, data=body or None,
                headers=forwarded(request), allow_redirects=False,
            ) as answer:  # fmt: skip
                return web.Response(
                    status=answer.status, body=await answer.read(),
                    headers={k: v for k, v in answer.headers.items() if k.lower() not in HOP},
                )  # fmt: skip

    async def pump(request: web.Request, session: aiohttp.ClientSession) -> web.StreamResponse:
        try:
            inner = await session.ws_connect(
                upstream.replace("http", "ws", 1) + request.path_qs, headers=forwarded(request)
            )
        except aiohttp.WSServerHandshakeError as e:
            return web.Response(status=e.status, text="refused upstream")
        outer = web.WebSocketResponse()
        await outer.prepare(request)

        async def down() -> None:
            async for message in inner:
                if message.type == WSMsgType.TEXT:
                    await outer.send_str(message.data)
            await outer.close()

        pumping = asyncio.create_task(down())
        async for message in outer:
            if message.type == WSMsgType.TEXT:
                await inner.send_str(message.data)
        await inner.close()
        await asyncio.gather(pumping, return_exceptions=True)
        return outer

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app, shutdown_timeout=2)
    await runner.setup()
    port = int(front.url.rsplit(":", 1)[1])
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


@pytest.fixture(scope="module", params=["none", "proxy"])
async def front(request: pytest.FixtureRequest, stack: EmbeddedStack) -> AsyncIterator[Front]:
    mode = str(request.param)
    env = {"EVENTFLEET_AUTH": mode, "EVENTFLEET_CONSOLE_ACTIONS": "true"}
    if mode == "proxy":
        env["EVENTFLEET_AUTH_TRUSTED_PROXIES"] = f"{PROXY}/32"
    async with running_fleet(stack, f"xsb_{mode}_{uuid.uuid4().hex[:6]}", **env) as fleet:
        if mode == "none":
            yield Front(fleet, fleet.url)
            return
        reached = Front(fleet, f"http://127.0.0.1:{free_port()}")
        runner = await identity_proxy(reached)
        try:
            yield reached
        finally:
            await runner.cleanup()


def attack_page(fleet_url: str, room: str, subject: str) -> str:
    """The attacker's page: two forms, two fetches and a WebSocket at the fleet."""
    append = f"{fleet_url}/v1/chat_room/{room}/events"
    erase = f"{fleet_url}/v1/subjects/{subject}/erase"
    socket = fleet_url.replace("http://", "ws://") + f"/v1/rooms/{room}/ws"

    def sent(mid: str) -> str:
        return json.dumps({
            "type": "MessageSent", "command_id": mid,
            "data": {"message_id": mid, "sender_id": subject, "content": "planted"},
        })  # fmt: skip

    # A text/plain form sends name=value: the name opens the JSON, the value closes it.
    form_name = sent("by-form")[:-1] + ', "client_id": "'
    return f"""<!doctype html><html><body>
<iframe name="sink1"></iframe><iframe name="sink2"></iframe>
<form id="append" method="post" enctype="text/plain" target="sink1" action="{append}">
<input type="hidden" name='{form_name}' value='x"}}'></form>
<form id="erase" method="post" enctype="text/plain" target="sink2" action="{erase}">
<input type="hidden" name='{{"operator": "' value='mallory"}}'></form>
<script>
window.result = {{ws: [], fetches: []}};
document.getElementById('append').submit();
document.getElementById('erase').submit();
for (const [url, body] of [[{json.dumps(append)}, {json.dumps(sent("by-fetch"))}],
                           [{json.dumps(erase)}, '{{"operator": "mallory"}}']]) {{
  fetch(url, {{method: 'POST', mode: 'no-cors', credentials: 'include', body: body,
              headers: {{'Content-Type': 'text/plain'}}}})
    .then(() => result.fetches.push('answered'), (e) => result.fetches.push('failed ' + e));
}}
const ws = new WebSocket({json.dumps(socket)});
ws.onopen = () => {{ result.ws.push('open'); ws.send({json.dumps(sent("by-socket"))}); }};
ws.onerror = () => result.ws.push('error');
ws.onclose = (e) => result.ws.push('close ' + e.code);
</script></body></html>"""


async def refused_so_far(front: Front) -> float:
    status, text = await front.call("GET", "/metrics")
    assert status == 200
    return sum(float(count) for count in REFUSED.findall(text))


async def test_a_page_on_another_origin_changes_nothing(front: Front, browser: Any) -> None:
    run = uuid.uuid4().hex[:8]
    room, subject = f"xsb-{run}", f"victim-{run}"
    front.user = subject  # the signed-in operator whose browser visits the page
    mine = {"type": "MessageSent", "data": {"message_id": "own", "sender_id": subject,
                                            "content": "sealed"}}  # fmt: skip
    assert (await front.call("POST", f"/v1/chat_room/own-{run}/events", mine))[0] == 202
    before = await refused_so_far(front)

    page = attack_page(front.url, room, subject)

    async def serve(request: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        # Blocking WebDriver calls run off the loop: the attacker's server answers on it.
        await asyncio.to_thread(browser.get, f"http://localhost:{port}/")

        def result() -> dict[str, Any]:
            found: dict[str, Any] = browser.execute_script("return window.result")
            return found

        await wait_for(
            lambda: any(e.startswith("close") for e in result()["ws"])
            and len(result()["fetches"]) == 2,
            timeout_s=30, what="the attacker's socket closed and both fetches settled",
        )  # fmt: skip
        assert "open" not in result()["ws"], result()  # the handshake was refused
        # Each of the five reached the door and was refused there (not only by the browser):
        # in our runs four by Sec-Fetch-Site, one by its Origin alone (Chromium sent that one
        # without Sec-Fetch-Site).

        async def all_refused() -> bool:
            return await refused_so_far(front) - before >= 5

        await wait_for(all_refused, timeout_s=30, what="five cross-site refusals counted")
    finally:
        await runner.cleanup()

    fence = {"type": "MessageSent", "data": {"message_id": "fence", "sender_id": subject,
                                             "content": "fence"}}  # fmt: skip
    assert (await front.call("POST", f"/v1/chat_room/{room}/events", fence))[0] == 202
    status, body = await front.call(
        "GET", f"/v1/chat_room/{room}/events?min_version=1&wait_ms=15000&limit=100"
    )
    assert status == 200, body
    assert [e["data"]["message_id"] for e in body["events"]] == ["fence"]
    status, erased = await front.call("POST", f"/v1/subjects/{subject}/erase", {"operator": "dpo"})
    assert status == 200 and erased["already_erased"] is False, erased  # the page erased nothing


async def test_the_fleets_own_pages_still_write(front: Front, browser: Any) -> None:
    run = uuid.uuid4().hex[:8]
    room = f"own-{run}"
    front.user = f"ann-{run}"
    await asyncio.to_thread(browser.get, f"{front.url}/chat/{room}")
    await wait_for(
        lambda: browser.find_element("tag name", "body").get_attribute("data-live") == "1",
        timeout_s=30, what="the chat page's own socket open",
    )  # fmt: skip
    body = {"type": "MessageSent", "data": {"message_id": "m1", "sender_id": front.user,
                                            "content": "from the page"}}  # fmt: skip
    status = await asyncio.to_thread(
        browser.execute_async_script,
        "const done = arguments[arguments.length - 1];"
        "fetch('/v1/chat_room/' + arguments[0] + '/events', {method: 'POST', body: arguments[1],"
        " headers: {'Content-Type': 'application/json'}}).then(r => done(r.status),"
        " e => done(String(e)));",
        room, json.dumps(body),
    )  # fmt: skip
    assert status == 202, status
    status, events = await front.call(
        "GET", f"/v1/chat_room/{room}/events?min_version=1&wait_ms=15000"
    )
    assert status == 200 and [e["data"]["message_id"] for e in events["events"]] == ["m1"]
    await asyncio.to_thread(browser.get, "about:blank")  # the page's socket closes with it
