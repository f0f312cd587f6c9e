"""The door, from outside: hostile tokens, open probes, key rotation, the chat's rules, actors.

One fleet process trusts a JWKS this test serves over HTTP (and rotates mid-run). Every token
is signed with real keys (``tests.tokens``); nothing here reaches inside the process.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from multidict import CIMultiDict

from tests.fleet import FleetProcess, json_payload, order_items, running_fleet
from tests.hostile_tokens import hostile, hs256_with_public_key
from tests.kafka_topics import produce_raw, read_until
from tests.tokens import Issuer
from tests.waiting import wait_for, within
from topics.envelope import Actor, Event, Metadata, decode, encode, kafka_headers, new_event
from workers.devtools.embedded import EmbeddedStack, free_port
from workers.examples.domains.chat_room import CHAT_ROOM

PLACED = {"type": "OrderPlaced", "data": {"items": order_items()}}


class JwksServer:
    """The identity provider's JWKS endpoint: serves whatever keys the issuer holds now."""

    def __init__(self, issuer: Issuer) -> None:
        self.issuer = issuer
        self.port = free_port()
        self.fetches = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/jwks.json"

    async def start(self) -> None:
        async def jwks(request: web.Request) -> web.Response:
            self.fetches += 1
            return web.Response(body=self.issuer.jwks(), content_type="application/json")

        app = web.Application()
        app.router.add_get("/jwks.json", jwks)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture(scope="module")
async def idp() -> AsyncIterator[JwksServer]:
    server = JwksServer(Issuer())
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="module")
async def door(stack: EmbeddedStack, idp: JwksServer) -> AsyncIterator[FleetProcess]:
    env = {
        "EVENTFLEET_AUTH_JWKS": idp.url,
        "EVENTFLEET_AUTH_JWKS_REFRESH_S": "1",
        "EVENTFLEET_AUTH_JWKS_MAX_AGE_S": "2",
    }
    name = f"door_{uuid.uuid4().hex[:8]}"
    async with running_fleet(stack, name, issuer=idp.issuer, **env) as fleet:
        yield fleet


async def call(
    fleet: FleetProcess, method: str, path: str, body: Any = None, *, headers: Any = None
) -> tuple[int, Any, CIMultiDict[str]]:
    data = json_payload(orjson.dumps(body)) if body is not None else None
    async with aiohttp.ClientSession() as session:
        async with session.request(
            method, fleet.url + path, data=data, headers=headers, allow_redirects=False
        ) as r:
            raw = await r.read()
            try:
                parsed: Any = orjson.loads(raw)
            except orjson.JSONDecodeError:
                parsed = raw.decode(errors="replace")
            return r.status, parsed, CIMultiDict(r.headers)


def as_(idp: JwksServer, sub: str, *roles: str) -> str:
    return idp.issuer.token(sub, roles)


async def test_every_hostile_token_is_refused_with_its_reason_and_nothing_is_stored(
    door: FleetProcess, idp: JwksServer
) -> None:
    catalogue = hostile(idp.issuer)
    catalogue["algorithm_not_allowed_hs256"] = (
        f"Bearer {hs256_with_public_key(idp.issuer, idp.issuer.claims('eve', ['moderator']))}",
    )
    for case, authorization in catalogue.items():
        reason = case.removesuffix("_hs256")
        order = f"o-{uuid.uuid4().hex[:8]}"
        headers = CIMultiDict(("Authorization", value) for value in authorization)
        status, body, answer = await call(
            door, "POST", f"/v1/order/{order}/events", PLACED, headers=headers
        )
        assert status == 401, (case, status, body)
        assert body["error"] == "unauthenticated" and body["reason"] == reason, (case, body)
        assert answer["WWW-Authenticate"].startswith("Bearer realm="), case
        refusals = await door.metric("eventfleet_auth_refusals_total", reason=reason, status="401")
        assert refusals >= 1, reason
        # Nothing stored: the aggregate has no events (asked with a valid token).
        status, body = await door.get(f"/v1/order/{order}/events")
        assert status == 404 and body["error"] == "not_found", (case, body)


async def test_probes_and_metrics_are_open_and_faust_pages_are_not_served(
    door: FleetProcess,
) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        status, _, _ = await call(door, "GET", path)
        assert status == 200, path
    status, verbose, _ = await call(door, "GET", "/healthz?verbose")
    assert status == 200 and verbose["auth"] == "jwt"
    status, _, headers = await call(door, "GET", "/")
    assert status == 302 and headers["Location"] == "/console"
    for path in ("/router/", "/table/", "/v1/order/o-1/state", "/nope"):
        status, body, _ = await call(door, "GET", path)
        assert status == 401 and body["reason"] == "missing_token", path
    for path in ("/router/", "/table/", "/graph/"):
        status, body = await door.get(path)
        assert status == 404 and body["error"] == "route_not_found", path


async def test_the_jwks_rotates_mid_run(door: FleetProcess, idp: JwksServer) -> None:
    order = f"/v1/order/o-{uuid.uuid4().hex[:8]}/events"
    first = idp.issuer.token("rotated", [], kid="rsa-1")
    idp.issuer.add_key("rsa-2")
    new = idp.issuer.token("rotated", [], kid="rsa-2")

    async def new_key_accepted() -> bool:  # an unknown kid refetches, once per REFRESH_S
        status, _ = await door.get(order, token=new)
        return status == 404  # let in: the order has no events yet

    await wait_for(new_key_accepted, timeout_s=15, what="the new key accepted")
    status, body = await door.post(order, PLACED, token=new)
    assert status == 202, body
    idp.issuer.remove_key("rsa-1")
    idp.issuer.default_kid = "rsa-2"

    async def first_key_refused() -> bool:
        status, body = await door.get(order, token=first)
        return status == 401 and body["reason"] == "unknown_key"

    await wait_for(first_key_refused, timeout_s=15, what="the removed key refused")
    status, body = await door.get(order, token=new)
    assert status == 200 and body["events"][0]["metadata"]["actor"]["principal"] == "rotated"


async def test_chat_rules_follow_the_token_never_the_body(
    door: FleetProcess, idp: JwksServer
) -> None:
    room = f"/v1/chat_room/r-{uuid.uuid4().hex[:8]}/events"
    ada, bob = as_(idp, "ada"), as_(idp, "bob")
    mod = as_(idp, "mo", "moderator")

    async def send(token: str, kind: str, **data: Any) -> tuple[int, Any]:
        return await door.post(room, {"type": kind, "data": data}, token=token)

    assert (await send(ada, "MessageSent", message_id="m1", content="hi"))[0] == 202
    assert (await send(ada, "MessageSent", message_id="m2", sender_id="ada", content="x"))[0] == 202
    assert (await send(bob, "MessageSent", message_id="m3", content="yo"))[0] == 202
    status, body = await send(bob, "MessageSent", message_id="m4", sender_id="ada", content="x")
    assert (status, body["error"], body["reason"]) == (403, "forbidden", "not_your_identity")

    async def stored(count: int) -> bool:
        status, body = await door.get(room)
        return status == 200 and len(body["events"]) >= count

    await wait_for(lambda: stored(3), timeout_s=20, what="the sends stored")
    # Someone else's message: 403 before anything is produced, with or without a forged role.
    status, body = await send(bob, "MessageEdited", message_id="m1", content="mine now")
    assert (status, body["reason"]) == (403, "not_your_message")
    status, body = await send(bob, "MessageDeleted", message_id="m1", role="moderator")
    assert (status, body["reason"]) == (403, "role_from_token")
    status, body = await send(bob, "MessageDeleted", message_id="m1")
    assert (status, body["reason"]) == (403, "not_your_message")
    # Own edit and delete, and a moderator's (its role from the token): accepted.
    assert (await send(ada, "MessageEdited", message_id="m1", content="hello"))[0] == 202
    assert (await send(bob, "MessageDeleted", message_id="m3"))[0] == 202
    assert (await send(mod, "MessageDeleted", message_id="m2"))[0] == 202
    await wait_for(lambda: stored(6), timeout_s=20, what="the changes stored")
    _, body = await door.get(room)
    actors = [(e["type"], e["metadata"]["actor"]["principal"]) for e in body["events"]]
    assert actors == [
        ("MessageSent", "ada"), ("MessageSent", "ada"), ("MessageSent", "bob"),
        ("MessageEdited", "ada"), ("MessageDeleted", "bob"), ("MessageDeleted", "mo"),
    ]  # fmt: skip
    assert all(
        e["metadata"]["actor"]["principal"] == e["data"]["sender_id"] for e in body["events"]
    )
    assert body["events"][-1]["data"]["role"] == "moderator"
    assert body["events"][-1]["metadata"]["actor"]["roles"] == ["moderator"]
    _, state = await door.get(room.removesuffix("/events") + "/state")
    assert [m["message_id"] for m in state["state"]["messages"]] == ["m1"]
    assert state["state"]["messages"][0]["content"] == "hello"


async def test_the_store_refuses_a_chat_change_produced_past_the_door(
    door: FleetProcess, idp: JwksServer
) -> None:
    """Straight to the events topic: another's actor, or none, is refused at the store."""
    room_id = f"r-{uuid.uuid4().hex[:8]}"
    room = f"/v1/chat_room/{room_id}"
    data = {"message_id": "m1", "content": "hi"}
    status, body = await door.post(
        room + "/events", {"type": "MessageSent", "data": data}, token=as_(idp, "ada")
    )
    assert status == 202, body

    async def stored(count: int) -> bool:
        status, body = await door.get(room + "/events")
        return status == 200 and len(body["events"]) >= count

    await wait_for(lambda: stored(1), timeout_s=20, what="the send stored")
    deleted = CHAT_ROOM.schema_version("MessageDeleted")

    def change(kind: str, data: dict[str, Any], actor: Actor | None) -> Event:
        version = deleted if kind == "MessageDeleted" else 1
        metadata = Metadata(actor=actor)
        return new_event(
            "chat_room", room_id, kind, data, metadata=metadata, schema_version=version
        )

    forged = change("MessageDeleted", {"message_id": "m1", "sender_id": "bob"}, Actor("bob"))
    anonymous = change("MessageDeleted", {"message_id": "m1", "sender_id": "ada"}, None)
    edit = {"message_id": "m1", "sender_id": "ada", "content": "mine"}
    legitimate = change("MessageEdited", edit, Actor("ada"))
    kafka = door.env["EVENTFLEET_KAFKA_URL"]
    records = [(e.key, encode(e), list(kafka_headers(e))) for e in (forged, anonymous, legitimate)]
    await produce_raw(kafka, f"{door.prefix}events", records)

    await wait_for(lambda: stored(2), timeout_s=30, what="the legitimate edit stored")
    _, body = await door.get(room + "/events")
    assert [e["id"] for e in body["events"]][1:] == [legitimate.id]
    for refused, why in ((forged, "not_your_message"), (anonymous, "no_actor")):
        status, answer = await door.get(f"{room}/outcome?event_id={refused.id}")
        assert (status, answer["outcome"], answer["reason"]) == (
            200, "rejected", "forbidden_at_store"
        ), answer  # fmt: skip
        assert why in answer["message"]
    letters = await read_until(
        kafka,
        f"{door.prefix}events.dlq",
        expect=2,
        where=lambda r: r.key is not None and room_id.encode() in r.key,
        settle_s=0.2,
    )
    ours = {
        decode(r.value).id: dict(r.headers)["dlq_reason"]
        for r in letters
        if r.key is not None and room_id.encode() in r.key
    }
    assert ours == {forged.id: b"forbidden_at_store", anonymous.id: b"forbidden_at_store"}
    _, state = await door.get(room + "/state")
    [message] = state["state"]["messages"]  # m1 stays, edited by its sender only
    assert (message["message_id"], message["edited"]) == ("m1", True)


async def test_actor_is_the_token_subject_on_every_stored_event(
    door: FleetProcess, idp: JwksServer
) -> None:
    order = f"/v1/order/o-{uuid.uuid4().hex[:8]}/events"
    for sub, (kind, data) in zip(("carol", "dave"), (("OrderPlaced", {"items": order_items()}),
                                                    ("OrderPaid", {"amount": 12.5})), strict=True):  # fmt: skip
        status, body = await door.post(
            order, {"type": kind, "data": data}, token=as_(idp, sub, "r1")
        )
        assert status == 202, body

    async def both() -> bool:
        status, body = await door.get(order)
        return status == 200 and len(body["events"]) == 2

    await wait_for(both, timeout_s=20, what="both events stored")
    _, body = await door.get(order)
    assert [e["metadata"]["actor"] for e in body["events"]] == [
        {"principal": "carol", "roles": ["r1"]}, {"principal": "dave", "roles": ["r1"]},
    ]  # fmt: skip


async def test_a_worker_without_a_working_auth_choice_refuses_to_start() -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EVENTFLEET_")}
    for extra, words in (
        ({}, "EVENTFLEET_AUTH is not set"),
        ({"EVENTFLEET_AUTH": "jwt"}, "EVENTFLEET_AUTH_JWKS"),
        ({"EVENTFLEET_AUTH": "proxy"}, "EVENTFLEET_AUTH_TRUSTED_PROXIES"),
        ({"EVENTFLEET_AUTH": "basic"}, "EVENTFLEET_AUTH='basic' is invalid"),
    ):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "workers.cli", "worker", "--role", "commands",
            env={**clean, "EVENTFLEET_KAFKA_URL": "kafka://127.0.0.1:1",
                 "EVENTFLEET_DOMAINS": "workers.examples.domains:default_domains", **extra},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await within(
            process.communicate(), timeout_s=60, what="the refused worker to exit"
        )
        lines = err.decode().strip().splitlines()
        assert process.returncode == 2, err
        assert len(lines) == 1 and words in lines[0], lines
