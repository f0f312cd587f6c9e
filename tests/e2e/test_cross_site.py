"""Cross-site requests as an attacker's page makes a browser send them, in every auth mode.

Raw HTTP over a socket (every header exactly as written) against a real fleet in ``jwt``,
``proxy`` (identity headers from the trusted proxy's address, as oauth2-proxy sends them for a
signed-in operator) and ``none``: foreign ``Origin``, ``Sec-Fetch-Site: cross-site``/``same-site``,
``Origin: null``, the form and text content types a page may send without a preflight, and
WebSocket upgrades. Each refusal is checked to have changed nothing: a fence append afterwards
is the aggregate's only event, and a later real erasure is the subject's first.
"""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
import pytest

from tests.fleet import FleetProcess, running_fleet
from tests.tokens import OPERATOR, VIEWER, bearer
from tests.waiting import within
from workers.devtools.embedded import EmbeddedStack

PROXY = "127.0.0.2"
EVIL = "https://evil.example"
ALLOWED = "https://app.example"


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: Any


@dataclass(frozen=True, slots=True)
class Target:
    """A fleet in one auth mode and how a signed-in operator's browser reaches it."""

    mode: str
    fleet: FleetProcess
    source: str | None = None
    """The address to connect from (the proxy's, in proxy mode)."""

    @property
    def origin(self) -> str:
        parts = urlsplit(self.fleet.url)
        return f"{parts.scheme}://{parts.netloc}"

    def identity(self, principal: str) -> dict[str, str]:
        """What the browser's request carries to name ``principal`` (an operator)."""
        if self.mode == "jwt":
            return bearer(self.fleet.token(principal, [OPERATOR, VIEWER]))
        if self.mode == "proxy":
            return {"X-Forwarded-User": principal, "X-Forwarded-Groups": f"{OPERATOR},{VIEWER}"}
        return {}

    async def send(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes = b"",
        *,
        upgrade: bool = False,
    ) -> Answer:
        """One raw request on its own connection; a 101 is read up to its head only."""
        parts = urlsplit(self.fleet.url)
        local = (self.source, 0) if self.source else None
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port, local_addr=local)
        try:
            lines = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}"]
            sent = dict(headers)
            if upgrade:
                key = base64.b64encode(os.urandom(16)).decode()
                sent |= {"Upgrade": "websocket", "Connection": "Upgrade",
                         "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13"}  # fmt: skip
            else:
                sent |= {"Connection": "close", "Content-Length": str(len(body))}
            lines += [f"{name}: {value}" for name, value in sent.items()]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            await writer.drain()
            head = await within(reader.readuntil(b"\r\n\r\n"), timeout_s=30, what="the head")
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            answered = {
                name.strip().lower(): value.strip()
                for name, _, value in (h.partition(":") for h in header_lines if h)
            }
            status = int(status_line.split()[1])
            if status == 101:
                return Answer(status, answered, None)
            length = int(answered.get("content-length", "0"))
            raw = await within(reader.readexactly(length), timeout_s=30, what="the body")
            return Answer(status, answered, orjson.loads(raw) if raw else None)
        finally:
            writer.close()


def browser(origin: str, site: str | None = "cross-site") -> dict[str, str]:
    """The headers a browser adds to a request a page on ``origin`` makes."""
    sent = {"Origin": origin}
    if site is not None:
        sent["Sec-Fetch-Site"] = site
    return sent


def message(sender: str, mid: str, content: str = "hello") -> bytes:
    return orjson.dumps({
        "type": "MessageSent", "command_id": mid,
        "data": {"message_id": mid, "sender_id": sender, "content": content},
    })  # fmt: skip


@pytest.fixture(scope="module", params=["jwt", "proxy", "none"])
async def target(
    request: pytest.FixtureRequest, stack: EmbeddedStack, fleet: FleetProcess
) -> AsyncIterator[Target]:
    mode = str(request.param)
    if mode == "jwt":  # the shared fleet: jwt, no trusted proxy, no allowed origin
        yield Target(mode, fleet)
        return
    env = {
        "EVENTFLEET_AUTH": mode,
        "EVENTFLEET_CONSOLE_ACTIONS": "true",
        "EVENTFLEET_ALLOWED_ORIGINS": ALLOWED,
    }
    if mode == "proxy":
        env["EVENTFLEET_AUTH_TRUSTED_PROXIES"] = f"{PROXY}/32"
    async with running_fleet(stack, f"xsite_{mode}_{uuid.uuid4().hex[:6]}", **env) as process:
        yield Target(mode, process, PROXY if mode == "proxy" else None)


async def only_the_fence(target: Target, room: str, principal: str) -> list[dict[str, Any]]:
    """Append a fence message the plain way and return the room's events once it is stored."""
    json = {"Content-Type": "application/json", **target.identity(principal)}
    fence = await target.send(
        "POST", f"/v1/chat_room/{room}/events", json, message(principal, "fence")
    )
    assert fence.status == 202, fence
    read = await target.send(
        "GET", f"/v1/chat_room/{room}/events?min_version=1&wait_ms=15000&limit=100",
        target.identity(principal),
    )  # fmt: skip
    assert read.status == 200, read
    events: list[dict[str, Any]] = read.body["events"]
    return events


async def test_a_foreign_page_changes_nothing(target: Target) -> None:
    run = uuid.uuid4().hex[:8]
    me, room = f"op-{run}", f"xs-{run}"
    append = f"/v1/chat_room/{room}/events"
    who = target.identity(me)
    text = {"Content-Type": "text/plain;charset=UTF-8"}
    json = {"Content-Type": "application/json"}
    hostile: list[tuple[str, dict[str, str], str]] = [
        # (what, headers, expected reason)
        ("form text/plain from evil", {**browser(EVIL), **text}, "cross_site"),
        ("json from evil", {**browser(EVIL), **json}, "cross_site"),
        ("sibling subdomain", {**browser("https://sibling.example", "same-site"), **text},
         "cross_site"),
        ("evil, no Sec-Fetch-Site (an old browser)", {**browser(EVIL, None), **text},
         "foreign_origin"),
        ("another port of this host", {**browser("http://127.0.0.1:1", None), **json},
         "foreign_origin"),
        ("sandboxed frame", {**browser("null", None), **text}, "opaque_origin"),
        ("own origin but cross-site", {**browser(target.origin, "cross-site"), **json},
         "cross_site"),
        ("forged X-Forwarded-Host from an untrusted peer",
         {**browser(EVIL, None), "X-Forwarded-Host": "evil.example", **json}, "foreign_origin"),
    ]  # fmt: skip
    for what, headers, reason in hostile:
        if target.mode == "proxy" and "X-Forwarded-Host" in headers:
            continue  # from the proxy's address it is trusted: see the next test
        answer = await target.send("POST", append, {**who, **headers}, message(me, f"m-{what}"))
        assert (answer.status, answer.body.get("error"), answer.body.get("reason")) == (
            403,
            "cross_origin",
            reason,
        ), (target.mode, what, answer)
        assert "EVENTFLEET_ALLOWED_ORIGINS" in answer.body["message"]
    for kind in ("text/plain", "application/x-www-form-urlencoded",
                 "multipart/form-data; boundary=x", "application/octet-stream",
                 "application/jsonx", "application/+json"):  # fmt: skip
        answer = await target.send("POST", append, {**who, "Content-Type": kind}, message(me, kind))
        assert (answer.status, answer.body["error"]) == (415, "unsupported_media_type"), answer
        assert "application/json" in answer.body["message"]
    answer = await target.send("POST", append, who, message(me, "untyped"))  # no Content-Type
    assert (answer.status, answer.body["error"]) == (415, "unsupported_media_type"), answer
    events = await only_the_fence(target, room, me)
    assert [e["data"]["message_id"] for e in events] == ["fence"], (target.mode, events)


async def test_a_foreign_page_cannot_erase(target: Target) -> None:
    run = uuid.uuid4().hex[:8]
    me = f"op-{run}"
    await only_the_fence(target, f"xe-{run}", me)  # something of ``me`` sealed
    erase = f"/v1/subjects/{me}/erase"
    body = b'{"operator": "mallory"}'
    for headers in (
        {**browser(EVIL), "Content-Type": "text/plain"},
        {**browser(EVIL), "Content-Type": "application/x-www-form-urlencoded"},
        {**browser("https://sibling.example", "same-site")},
        {**browser("null", None), "Content-Type": "text/plain"},
    ):
        answer = await target.send("POST", erase, {**target.identity(me), **headers}, body)
        assert (answer.status, answer.body["error"]) == (403, "cross_origin"), answer
    answer = await target.send(
        "POST", erase, {**target.identity(me), "Content-Type": "text/plain"}, body
    )
    assert (answer.status, answer.body["error"]) == (415, "unsupported_media_type"), answer
    same = {**target.identity(me), **browser(target.origin, "same-origin")}
    answer = await target.send("POST", erase, {**same, "Content-Type": "application/json"}, body)
    assert answer.status == 200 and answer.body["already_erased"] is False, answer  # the first


async def test_a_foreign_page_gets_no_chat_socket(target: Target) -> None:
    run = uuid.uuid4().hex[:8]
    me, room = f"op-{run}", f"xw-{run}"
    path = f"/v1/rooms/{room}/ws"
    for headers in (
        browser(EVIL),
        browser(EVIL, None),
        browser("https://sibling.example", "same-site"),
        browser("null", None),
        browser(target.origin, "cross-site"),
    ):
        answer = await target.send("GET", path, {**target.identity(me), **headers}, upgrade=True)
        assert (answer.status, answer.body["error"]) == (403, "cross_origin"), (headers, answer)
    own = await target.send(
        "GET", path, {**target.identity(me), **browser(target.origin, "same-origin")}, upgrade=True
    )
    assert own.status == 101, own  # the fleet's own page (the chat page) still connects
    no_browser = await target.send("GET", path, target.identity(me), upgrade=True)
    assert no_browser.status == 101, no_browser  # nor does a script
    events = await only_the_fence(target, room, me)
    assert [e["data"]["message_id"] for e in events] == ["fence"]


async def test_the_own_origin_and_scripts_still_write(target: Target) -> None:
    run = uuid.uuid4().hex[:8]
    me, room = f"op-{run}", f"xo-{run}"
    append = f"/v1/chat_room/{room}/events"
    who = target.identity(me)
    for n, headers in enumerate((
        {**browser(target.origin, "same-origin"), "Content-Type": "application/json"},
        {**browser(target.origin, None), "Content-Type": "application/json; charset=utf-8"},
        {"Content-Type": "application/vnd.eventfleet+json"},
        {"Sec-Fetch-Site": "none", "Content-Type": "Application/JSON"},
    )):  # fmt: skip
        answer = await target.send("POST", append, {**who, **headers}, message(me, f"ok-{n}"))
        assert answer.status == 202, (headers, answer)


@pytest.mark.parametrize("target", ["proxy"], indirect=True)  # the mode with a trusted proxy
async def test_proxy_headers_name_the_origin_only_from_the_proxy(target: Target) -> None:
    run = uuid.uuid4().hex[:8]
    me = f"op-{run}"
    append = f"/v1/chat_room/xp-{run}/events"
    behind = {"X-Forwarded-Host": "console.example", "X-Forwarded-Proto": "https",
              "Content-Type": "application/json", **target.identity(me)}  # fmt: skip
    answer = await target.send(
        "POST", append, {**behind, **browser("https://console.example", "same-origin")},
        message(me, "a"),
    )  # fmt: skip
    assert answer.status == 202, answer
    for origin in ("http://console.example", "https://console.example:8443", EVIL):
        answer = await target.send(
            "POST", append, {**behind, **browser(origin, None)}, message(me, origin)
        )
        assert (answer.status, answer.body["reason"]) == (403, "foreign_origin"), (origin, answer)


@pytest.mark.parametrize("target", ["proxy", "none"], indirect=True)  # with ALLOWED set
async def test_an_allowed_origin_may_write(target: Target) -> None:
    run = uuid.uuid4().hex[:8]
    me = f"op-{run}"
    headers = {**target.identity(me), **browser(ALLOWED), "Content-Type": "application/json"}
    answer = await target.send("POST", f"/v1/chat_room/xa-{run}/events", headers, message(me, "a"))
    assert answer.status == 202, answer
    upgrade = await target.send("GET", f"/v1/rooms/xa-{run}/ws", headers, upgrade=True)
    assert upgrade.status == 101, upgrade


async def test_refusals_are_counted(target: Target) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(target.fleet.url + "/metrics") as r:
            text = await r.text()
    assert 'eventfleet_auth_refusals_total{reason="cross_site",status="403"}' in text
