"""A real browser as the attacker: headless Chromium loads a page from another origin
(``http://localhost:<other port>``, the fleet being ``http://127.0.0.1:<port>``) that posts a
``text/plain`` form and a ``no-cors`` ``fetch()`` to append and to erase, and opens the chat
WebSocket. The fleet's door is open (``EVENTFLEET_AUTH=none``, operator actions on): whoever's
browser reaches it could act, so only the Origin check stands between the page and the store.
Nothing may change, and the socket must be refused; the fleet's own chat page still connects and
its own requests still write.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from tests.fleet import FleetProcess, running_fleet
from tests.waiting import wait_for
from workers.devtools.embedded import EmbeddedStack, free_port

pytestmark = pytest.mark.slow

REFUSED = re.compile(
    r'eventfleet_auth_refusals_total\{reason="(?:cross_site|foreign_origin|opaque_origin)",'
    r'status="403"\} (\S+)'
)


@pytest.fixture(scope="module")
async def open_fleet(stack: EmbeddedStack) -> AsyncIterator[FleetProcess]:
    name = f"xsb_{uuid.uuid4().hex[:8]}"
    env = {"EVENTFLEET_AUTH": "none", "EVENTFLEET_CONSOLE_ACTIONS": "true"}
    async with running_fleet(stack, name, **env) as process:
        yield process


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


async def refused_so_far(fleet: FleetProcess) -> float:
    status, text = await fleet.get("/metrics")
    assert status == 200
    return sum(float(count) for count in REFUSED.findall(text))


async def test_a_page_on_another_origin_changes_nothing(
    open_fleet: FleetProcess, browser: Any
) -> None:
    run = uuid.uuid4().hex[:8]
    room, subject = f"xsb-{run}", f"victim-{run}"
    mine = {"type": "MessageSent", "data": {"message_id": "own", "sender_id": subject,
                                            "content": "sealed"}}  # fmt: skip
    assert (await open_fleet.post(f"/v1/chat_room/own-{run}/events", mine))[0] == 202
    before = await refused_so_far(open_fleet)

    page = attack_page(open_fleet.url, room, subject)

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
        # (in our runs four by Sec-Fetch-Site, one by its Origin alone: Chromium sent that one
        # without Sec-Fetch-Site).

        async def all_refused() -> bool:
            return await refused_so_far(open_fleet) - before >= 5

        await wait_for(all_refused, timeout_s=30, what="five cross-site refusals counted")
    finally:
        await runner.cleanup()

    fence = {"type": "MessageSent", "data": {"message_id": "fence", "sender_id": subject,
                                             "content": "fence"}}  # fmt: skip
    assert (await open_fleet.post(f"/v1/chat_room/{room}/events", fence))[0] == 202
    status, body = await open_fleet.get(
        f"/v1/chat_room/{room}/events?min_version=1&wait_ms=15000&limit=100"
    )
    assert status == 200, body
    assert [e["data"]["message_id"] for e in body["events"]] == ["fence"]
    status, erased = await open_fleet.post(f"/v1/subjects/{subject}/erase", {"operator": "dpo"})
    assert status == 200 and erased["already_erased"] is False, erased  # the page erased nothing


async def test_the_fleets_own_pages_still_write(open_fleet: FleetProcess, browser: Any) -> None:
    room = f"own-{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(browser.get, f"{open_fleet.url}/chat/{room}")
    await wait_for(
        lambda: browser.find_element("tag name", "body").get_attribute("data-live") == "1",
        timeout_s=30, what="the chat page's own socket open",
    )  # fmt: skip
    body = {"type": "MessageSent", "data": {"message_id": "m1", "sender_id": "ann",
                                            "content": "from the page"}}  # fmt: skip
    status = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('/v1/chat_room/' + arguments[0] + '/events', {method: 'POST', body: arguments[1],"
        " headers: {'Content-Type': 'application/json'}}).then(r => done(r.status),"
        " e => done(String(e)));",
        room, json.dumps(body),
    )  # fmt: skip
    assert status == 202, status
    status, events = await open_fleet.get(
        f"/v1/chat_room/{room}/events?min_version=1&wait_ms=15000"
    )
    assert status == 200 and [e["data"]["message_id"] for e in events["events"]] == ["m1"]
