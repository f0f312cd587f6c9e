"""Erasure as an auditor checks it: a unique marker in chat messages, the sender erased, then the
raw bytes of every MongoDB collection and every Kafka topic scanned for it, all partitions."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from bson.raw_bson import RawBSONDocument
from pymongo import AsyncMongoClient

from tests.fleet import FleetProcess, running_fleet, wait_for
from tests.kafka_topics import read_records
from tests.tokens import OPERATOR, VIEWER, bearer
from workers.devtools.embedded import EmbeddedStack


@pytest.fixture(scope="module")
async def open_fleet(stack: EmbeddedStack) -> AsyncIterator[FleetProcess]:
    """A fleet with its door open (no identity) and operator actions on."""
    name = f"erase_{uuid.uuid4().hex[:8]}"
    env = {"EVENTFLEET_AUTH": "none", "EVENTFLEET_CONSOLE_ACTIONS": "true"}
    async with running_fleet(stack, name, **env) as process:
        yield process


async def post(fleet: FleetProcess, path: str, body: Any = None, **headers: str) -> tuple[int, Any]:
    """A POST with exactly ``headers``: no token unless they carry one."""
    async with aiohttp.ClientSession() as session:
        data = orjson.dumps(body) if body is not None else None
        if data is not None:
            headers = {"Content-Type": "application/json", **headers}
        async with session.post(fleet.url + path, data=data, headers=headers) as r:
            return r.status, orjson.loads(await r.read())


async def say(fleet: FleetProcess, room: str, sender: str, mid: str, content: str) -> None:
    body = {
        "type": "MessageSent",
        "data": {"message_id": mid, "sender_id": sender, "content": content},
    }
    status, answer = await fleet.post(
        f"/v1/chat_room/{room}/events", body, token=fleet.token(sender)
    )
    assert status == 202, answer


async def room_events(fleet: FleetProcess, room: str) -> list[dict[str, Any]]:
    status, body = await fleet.get(f"/v1/chat_room/{room}/events?limit=1000")
    return body["events"] if status == 200 else []


async def scan(stack: EmbeddedStack, fleet: FleetProcess, marker: bytes) -> dict[str, int]:
    """Occurrences of ``marker`` in the raw bytes of every collection of the fleet's database
    and every record (key, value, headers) of every topic on the broker, from the beginning."""
    found = {"collections": 0, "documents": 0, "topics": 0, "records": 0, "bytes": 0, "hits": 0}
    client: AsyncMongoClient[RawBSONDocument] = AsyncMongoClient(
        stack.urls.mongo_url, document_class=RawBSONDocument
    )
    try:
        db = client[fleet.env["EVENTFLEET_MONGO_DATABASE"]]
        for name in await db.list_collection_names():
            found["collections"] += 1
            async for doc in db[name].find({}):
                raw = bytes(doc.raw)
                found["documents"] += 1
                found["bytes"] += len(raw)
                found["hits"] += raw.count(marker)
    finally:
        await client.close()
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.urls.kafka_url.removeprefix("kafka://"))
    await admin.start()
    try:
        topics = await admin.list_topics()
    finally:
        await admin.close()
    for topic in topics:
        found["topics"] += 1
        for record in await read_records(stack.urls.kafka_url, topic, timeout_s=30):
            parts = [record.key or b"", record.value or b"", *(v or b"" for _, v in record.headers)]  # a tombstone has no value
            found["records"] += 1
            found["bytes"] += sum(len(p) for p in parts)
            found["hits"] += sum(p.count(marker) for p in parts)
    return found


async def test_an_erased_sender_is_unreadable_in_every_copy_and_others_read_whole(
    fleet: FleetProcess, stack: EmbeddedStack
) -> None:
    run = uuid.uuid4().hex[:8]
    operator = bearer(fleet.token("dpo", [OPERATOR]))  # the principal, whatever the body says
    room, ann, bob = f"audit-{run}", f"ann-{run}", f"bob-{run}"
    marker, other = f"MARK{run}ann", f"MARK{run}bob"
    for i in range(6):
        await say(fleet, room, ann, f"a{i}", f"{marker} says {i}")
        await say(fleet, room, bob, f"b{i}", f"{other} says {i}")
    await wait_for(lambda: _count(fleet, room, 12), timeout_s=60, what="12 stored messages")
    # Every reader shows the words while the key lives: the scan below is not vacuous.
    status, state = await fleet.get(f"/v1/chat_room/{room}/state")  # saves a snapshot too
    assert status == 200 and marker in orjson.dumps(state).decode()
    await wait_for(
        lambda: _ok(fleet, f"/v1/chat_room/{room}/snapshot"), timeout_s=30, what="snapshot"
    )
    await wait_for(lambda: _view_at(fleet, room, 12), timeout_s=60, what="the view at 12")

    in_flight = [say(fleet, room, ann, f"late{i}", f"{marker} late {i}") for i in range(10)]
    (status, erased), *_ = await asyncio.gather(
        post(fleet, f"/v1/subjects/{ann}/erase", {"operator": "mallory"}, **operator),
        *in_flight,
    )
    assert status == 200, erased
    assert erased["subject"] == ann and erased["by"] == "dpo" and erased["keys_destroyed"] == 1
    await wait_for(lambda: _count(fleet, room, 22), timeout_s=60, what="the late messages stored")

    events = await room_events(fleet, room)
    mine = [e["data"] for e in events if e["data"]["sender_id"] == ann]
    assert len(mine) == 16  # nothing lost: every message stored, sealed before or after
    for data in mine[:6]:
        assert data["content"] is None and data["erased"] is True
    for data in mine[6:]:  # in flight: sealed with the old key (erased) or a new one (whole)
        assert data.get("erased") is True or data["content"].startswith(f"{marker} late")
    theirs = [e["data"]["content"] for e in events if e["data"]["sender_id"] == bob]
    assert theirs == [f"{other} says {i}" for i in range(6)]
    status, snapshot = await fleet.get(f"/v1/chat_room/{room}/snapshot")
    first = snapshot["state"]["messages"][0]
    assert (first["content"], first["erased"]) == (None, True)
    status, page = await fleet.get(f"/v1/rooms/{room}/messages?limit=100")
    shown = {m["message_id"]: m for m in page["messages"]}
    assert shown["a0"]["content"] is None and shown["a0"]["erased"] is True
    assert shown["b0"]["content"] == f"{other} says 0"

    status, console = await fleet.get(f"/console/aggregates/chat_room/{room}")
    assert status == 200 and f"{other} says 0" in console and f"{marker} says" not in console

    found = await scan(stack, fleet, marker.encode())
    print(f"erasure scan: {found}")
    assert found["hits"] == 0, found
    assert found["collections"] >= 5 and found["topics"] >= 3 and found["bytes"] > 0
    # bob's words never sat in plain text either: sealed before anything was produced
    assert (await scan(stack, fleet, other.encode()))["hits"] == 0

    status, again = await post(fleet, f"/v1/subjects/{ann}/erase", **fleet.auth_headers)
    assert status == 200
    if again["already_erased"]:
        assert (again["by"], again["keys_destroyed"]) == ("dpo", 0)
    else:  # a late message was sealed with a new key after the first erasure: that one goes
        assert (again["by"], again["keys_destroyed"]) == ("tester", 1)
    status, unknown = await post(fleet, f"/v1/subjects/nobody-{run}/erase", **operator)
    assert status == 404 and unknown["error"] == "not_found"
    status, audit = await fleet.get("/console/audit")
    assert status == 200 and ann in str(audit) and "dpo" in str(audit)


async def test_erasing_needs_the_operator_role_and_a_token(fleet: FleetProcess) -> None:
    viewer = bearer(fleet.token("vera", [VIEWER]))
    status, body = await post(fleet, "/v1/subjects/anyone/erase", {"operator": "dpo"}, **viewer)
    assert status == 403 and body["error"] == "forbidden" and body["reason"] == "role_required"
    status, body = await post(fleet, "/v1/subjects/anyone/erase", {"operator": "dpo"})
    assert status == 401 and body["error"] == "unauthenticated"
    status, body = await post(fleet, "/v1/subjects/a%20b/erase", **fleet.auth_headers)
    assert status == 400 and "subject" in body["message"]


async def test_with_the_door_open_erasing_is_refused_to_another_site_and_to_bad_input(
    open_fleet: FleetProcess,
) -> None:
    erase = "/v1/subjects/x/erase"
    status, body = await post(open_fleet, erase, Origin="http://evil.example")
    assert status == 403 and body["error"] == "cross_origin"
    status, body = await post(open_fleet, erase, **{"Sec-Fetch-Site": "cross-site"})
    assert status == 403 and body["error"] == "cross_origin"
    status, body = await post(open_fleet, erase, ["not", "an", "object"])
    assert status == 400 and body["error"] == "bad_request"
    status, body = await post(open_fleet, erase, {"operator": ""})
    assert status == 400
    status, body = await post(open_fleet, erase, {"operator": "dpo"})
    assert status == 404 and body["error"] == "not_found"  # allowed: nothing of x to erase


async def _count(fleet: FleetProcess, room: str, n: int) -> bool:
    return len(await room_events(fleet, room)) == n


async def _ok(fleet: FleetProcess, path: str) -> bool:
    return (await fleet.get(path))[0] == 200


async def _view_at(fleet: FleetProcess, room: str, version: int) -> bool:
    status, body = await fleet.get(f"/v1/rooms/{room}/messages?limit=1")
    return status == 200 and body["source"] == "view" and body["version"] >= version
