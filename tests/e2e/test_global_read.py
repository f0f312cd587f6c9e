"""The global read end to end (issue 47): ``GET /v1/events`` and ``GET /v1/events/subscribe`` on
real fleets over the embedded stack. Pages visit every stored event once in each aggregate's
order while appends go on; filters; the read rule per event; SSE and WebSocket resumed with
``Last-Event-ID``; a position that survives a restart, and one refused: malformed, altered, cut
short, another fleet's, or one its log cannot continue from (the topic recreated with other
partitions). Two fleets of the owned-rooms domains ("rooms named alice-… are alice's")."""

from __future__ import annotations

import asyncio
import base64
import ctypes
import os
import re
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from tests.e2e.live_clients import sse, websocket
from tests.fleet import FleetProcess, order_items, start_together
from tests.tokens import bearer
from tests.waiting import wait_for, within
from workers.client import AsyncClient, Client, GlobalEvent, errors
from workers.devtools.embedded import EmbeddedStack

DOMAINS = {"EVENTFLEET_DOMAINS": "tests.e2e.owned_rooms:domains",
           "EVENTFLEET_LIVE_HEARTBEAT_S": "1"}  # fmt: skip


@dataclass
class Fleets:
    """``ours`` serves most tests; ``theirs`` is another fleet (its own store and topics), and
    the one restarted and recreated."""

    ours: FleetProcess
    theirs: FleetProcess


@pytest.fixture(scope="module")
async def fleets(stack: EmbeddedStack) -> AsyncIterator[Fleets]:
    ours = FleetProcess.for_stack(stack, f"gr_{uuid.uuid4().hex[:8]}", **DOMAINS)
    theirs = FleetProcess.for_stack(stack, f"gr_{uuid.uuid4().hex[:8]}", **DOMAINS)
    try:
        await start_together(ours, theirs)
        yield Fleets(ours, theirs)
    finally:
        codes = await asyncio.gather(ours.stop(), theirs.stop())
    assert codes == [0, 0], (ours.log_tail(), theirs.log_tail())


@dataclass
class Page:
    status: int
    body: Any
    link: str | None

    @property
    def refs(self) -> list[tuple[str, str, int]]:
        return [(e["aggregate_type"], e["aggregate_id"], e["version"]) for e in self.body["events"]]


async def page(fleet: FleetProcess, token: str | None = None, **query: str | int) -> Page:
    url = f"{fleet.url}/v1/events?{urlencode(query)}"
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers=bearer(token or fleet.token())) as r:
            return Page(r.status, orjson.loads(await r.read()), r.headers.get("Link"))


async def walk(
    fleet: FleetProcess, after: str = "", token: str | None = None, **query: str | int
) -> tuple[list[dict[str, Any]], str]:
    """Every page from ``after`` until ``more`` is false: the events, and the last ``next``."""
    got: list[dict[str, Any]] = []
    for _ in range(500):
        found = await page(fleet, token, after=after, **query)
        assert found.status == 200, found.body
        got += found.body["events"]
        after = found.body["next"]
        assert (found.link is not None) == found.body["more"]
        if not found.body["more"]:
            return got, after
    raise AssertionError("the pages did not end")


async def append(fleet: FleetProcess, kind: str, ident: str, body: dict[str, Any],
                 token: str | None = None) -> None:  # fmt: skip
    status, answer = await fleet.post(f"/v1/{kind}/{ident}/events", body, token=token)
    assert status in (201, 202), answer


def say(n: int) -> dict[str, Any]:
    return {"type": "MessageSent", "data": {"message_id": f"m{n}", "content": f"hello {n}"}}


async def all_stored(fleet: FleetProcess, refs: dict[tuple[str, str], int]) -> None:
    async def done() -> bool:
        for (kind, ident), version in refs.items():
            owner = fleet.token(ident.split("-")[0], ()) if kind == "chat_room" else None
            status, body = await fleet.get(f"/v1/{kind}/{ident}/state", token=owner)
            if status != 200 or body["version"] < version:
                return False
        return True

    await wait_for(done, timeout_s=60, what="every append stored")


async def test_pages_visit_every_event_once_in_order_while_appends_go_on(fleets: Fleets) -> None:
    fleet, run = fleets.ours, f"p{uuid.uuid4().hex[:6]}"
    alice = fleet.token("alice", ())
    rooms, orders, accounts = ([f"{run}-{k}{i}" for i in range(3)] for k in "roa")
    rooms = [f"alice-{r}" for r in rooms]
    expected: dict[tuple[str, str], int] = {}

    async def appending() -> None:
        for n in range(1, 5):
            for room in rooms:
                await append(fleet, "chat_room", room, say(n), alice)
                expected[("chat_room", room)] = n
            for account in accounts:
                body = ({"type": "AccountOpened", "data": {"owner": "ada"}} if n == 1
                        else {"type": "MoneyDeposited", "data": {"amount": n}})  # fmt: skip
                await append(fleet, "account", account, body)
                expected[("account", account)] = n
            if n == 1:
                for order in orders:
                    await append(fleet, "order", order,
                                 {"type": "OrderPlaced", "data": {"items": order_items()}})  # fmt: skip
                    expected[("order", order)] = 1

    writer = asyncio.create_task(appending())
    got: list[dict[str, Any]] = []
    after = ""
    while not writer.done():  # read while the appends go on
        found = await page(fleet, alice, after=after, limit=4, id_prefix="")
        assert found.status == 200, found.body
        got += [e for e in found.body["events"] if run in e["aggregate_id"]]
        after = found.body["next"]
        assert len(found.body["positions"]) == len(found.body["events"])
    await writer
    await all_stored(fleet, expected)
    rest, _ = await walk(fleet, after, alice, limit=4)
    got += [e for e in rest if run in e["aggregate_id"]]
    refs = [(e["aggregate_type"], e["aggregate_id"], e["version"]) for e in got]
    assert len(refs) == len(set(refs)), "an event came twice"
    for (kind, ident), last in expected.items():
        assert [v for k, i, v in refs if (k, i) == (kind, ident)] == list(range(1, last + 1))


async def test_filters_and_a_filter_that_keeps_nothing(fleets: Fleets) -> None:
    fleet, run = fleets.ours, f"f{uuid.uuid4().hex[:6]}"
    await append(
        fleet, "order", f"{run}-o1", {"type": "OrderPlaced", "data": {"items": order_items()}}
    )
    await append(fleet, "order", f"{run}-o1", {"type": "OrderPaid", "data": {"amount": 12.5}})
    await append(fleet, "account", f"{run}-a1", {"type": "AccountOpened", "data": {"owner": "ada"}})
    await all_stored(fleet, {("order", f"{run}-o1"): 2, ("account", f"{run}-a1"): 1})
    mine, _ = await walk(fleet, id_prefix=run)
    assert sorted((e["aggregate_id"], e["type"]) for e in mine) == [
        (f"{run}-a1", "AccountOpened"), (f"{run}-o1", "OrderPaid"), (f"{run}-o1", "OrderPlaced")]  # fmt: skip
    paid, _ = await walk(fleet, id_prefix=run, event_type="OrderPaid,AccountOpened")
    assert sorted(e["type"] for e in paid) == ["AccountOpened", "OrderPaid"]
    orders, _ = await walk(fleet, id_prefix=run, aggregate_type="order")
    assert [e["type"] for e in orders] == ["OrderPlaced", "OrderPaid"]
    both, _ = await walk(fleet, id_prefix=run, aggregate_type="order,account", limit=1)
    assert len(both) == 3
    nothing = await page(fleet, id_prefix=f"{run}-nobody")
    assert nothing.status == 200 and nothing.link is None
    assert (nothing.body["events"], nothing.body["more"]) == ([], False)
    unknown = await page(fleet, aggregate_type="ordre")
    assert (unknown.status, unknown.body["error"]) == (404, "unknown_aggregate_type")
    assert "'order'" in unknown.body["message"]  # did you mean
    undeclared = await page(fleet, aggregate_type="order", event_type="AccountOpened")
    assert (undeclared.status, undeclared.body["error"]) == (400, "bad_request")
    assert "declared by none of order" in undeclared.body["message"]


HOSTILE = {
    "limit": ["0", "1001", "-1", "x", "1e3", ""],
    "aggregate_type": ["Order", "order,", ",order", "order account", "a" * 65, "x" * 2049, "ørder"],
    "event_type": ["1Placed", "Order-Placed", "OrderPlaced,", "x" * 2049, "Order\u0000Placed"],
    "id_prefix": ["a b", "a/b", "x" * 129, "\u00e9", "a%b", "a\nb"],
    "after": ["0:15,1:7", "not base64!", "x" * 8193, "AAAA", "\u00e9"],
}


async def test_hostile_input_on_every_parameter_is_a_clear_400(fleets: Fleets) -> None:
    fleet = fleets.ours
    for name, values in HOSTILE.items():
        for value in values:
            found = await page(fleet, **{name: value})
            assert (found.status, found.body["error"]) == (400, "bad_request"), (name, value)
            message = found.body["message"]
            assert name in message or "position" in message, (name, value, message)
            client = await sse(f"{fleet.url}/v1/events/subscribe?{urlencode({name: value})}",
                               headers=fleet.auth_headers)  # fmt: skip
            await client.close()
            if name != "limit":  # the subscription has no limit
                assert (client.status, client.body["error"]) == (400, "bad_request"), (name, value)
    twice = await page(fleet, after="", limit=5)  # one of each: fine; a repeated one is not
    assert twice.status == 200
    async with aiohttp.ClientSession() as session:
        url = f"{fleet.url}/v1/events?limit=1&limit=2"
        async with session.get(url, headers=fleet.auth_headers) as r:
            assert r.status == 400 and (await r.json())["error"] == "bad_request"


async def test_the_read_rule_applies_to_each_event_and_the_position_moves_past_it(
    fleets: Fleets,
) -> None:
    fleet, run = fleets.ours, uuid.uuid4().hex[:6]
    alice, bob = fleet.token("alice", ()), fleet.token("bob", ())
    for who, token in (("alice", alice), ("bob", bob)):
        for n in (1, 2):
            await append(fleet, "chat_room", f"{who}-{run}", say(n), token)
    await append(
        fleet, "order", f"open-{run}", {"type": "OrderPlaced", "data": {"items": order_items()}}
    )
    await all_stored(fleet, {("chat_room", f"alice-{run}"): 2, ("chat_room", f"bob-{run}"): 2,
                             ("order", f"open-{run}"): 1})  # fmt: skip
    seen, end = await walk(fleet, token=alice, limit=2)
    mine = {(e["aggregate_id"], e["version"]) for e in seen if run in e["aggregate_id"]}
    assert mine == {(f"alice-{run}", 1), (f"alice-{run}", 2), (f"open-{run}", 1)}
    theirs, _ = await walk(fleet, token=bob)
    assert {e["aggregate_id"] for e in theirs if run in e["aggregate_id"]} == {
        f"bob-{run}", f"open-{run}"}  # fmt: skip
    assert not any(e["aggregate_id"].startswith("alice-") for e in theirs)
    after = await page(fleet, alice, after=end)  # bob's events were read past, not waited on
    assert (after.body["events"], after.body["more"]) == ([], False)


async def test_sse_and_websocket_resume_with_last_event_id(fleets: Fleets) -> None:
    fleet, run = fleets.ours, f"s{uuid.uuid4().hex[:6]}"
    room = f"alice-{run}"
    alice = fleet.token("alice", ())
    for n in (1, 2, 3):
        await append(fleet, "chat_room", room, say(n), alice)
    await all_stored(fleet, {("chat_room", room): 3})
    url = f"{fleet.url}/v1/events/subscribe?id_prefix={room}"
    client = await sse(url, headers=bearer(alice))
    try:
        assert client.status == 200, client.body
        await wait_for(lambda: client.versions() == [1, 2, 3], timeout_s=30, what="the catch-up")
        await append(fleet, "chat_room", room, say(4), alice)
        await wait_for(lambda: client.versions() == [1, 2, 3, 4], timeout_s=30, what="a live one")
        ids = [m.id for m in client.messages]
    finally:
        await client.close()
    assert all(ids) and len(set(ids)) == 4
    by_page, _ = await walk(fleet, token=alice, id_prefix=room)
    assert [m.data for m in client.messages] == by_page  # as the pages have them
    resumed = await sse(url, headers={"Last-Event-ID": str(ids[1]), **bearer(alice)})
    try:
        await wait_for(lambda: resumed.comments >= 2, timeout_s=30, what="the resume caught up")
        assert resumed.versions() == [3, 4]  # after the second, each once
    finally:
        await resumed.close()
    ws_url = url.replace("http://", "ws://")
    socket = await websocket(ws_url, headers={"Last-Event-ID": str(ids[2]), **bearer(alice)})
    try:
        assert socket.status == 101
        await wait_for(lambda: len(socket.messages) == 1, timeout_s=30, what="the socket's resume")
        await append(fleet, "chat_room", room, say(5), alice)
        await wait_for(lambda: len(socket.messages) == 2, timeout_s=30, what="a live one")
    finally:
        await socket.close()
    positioned = [m.data for m in socket.messages]
    assert [p["event"]["version"] for p in positioned] == [4, 5]
    after_fourth, _ = await walk(fleet, positioned[0]["position"], alice, id_prefix=room)
    assert [e["version"] for e in after_fourth] == [5]  # a socket's position resumes as an id
    bob = await sse(url, headers=bearer(fleet.token("bob", ())))
    try:
        await wait_for(lambda: bob.comments >= 2, timeout_s=30, what="bob's quiet stream")
        assert bob.messages == []  # alice's room: never shown to bob
    finally:
        await bob.close()


def altered(position: str) -> str:
    raw = bytearray(base64.urlsafe_b64decode(position + "=" * (-len(position) % 4)))
    raw[7] ^= 0x01  # an offset's byte
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


async def test_positions_of_another_fleet_altered_or_cut_short_are_refused(fleets: Fleets) -> None:
    ours, theirs = fleets.ours, fleets.theirs
    mine = (await page(ours, limit=1)).body["next"]
    foreign = (await page(theirs, limit=1)).body["next"]
    cases = {
        foreign: "was made by another fleet",
        altered(mine): "was altered or cut short",
        mine[:-3]: "cut short",
        mine + "A": "cut short|not base64url",
    }
    for position, why in cases.items():
        found = await page(ours, after=position)
        assert (found.status, found.body["error"]) == (400, "bad_request"), position
        assert any(w in found.body["message"] for w in why.split("|")), found.body
        assert "exactly as the fleet gave it" in found.body["message"]
        for headers in ({"Last-Event-ID": position}, {}):
            query = "" if headers else f"?after={position}"
            client = await sse(f"{ours.url}/v1/events/subscribe{query}",
                               headers={**headers, **ours.auth_headers})  # fmt: skip
            await client.close()
            assert (client.status, client.body["error"]) == (400, "bad_request"), position


async def test_a_position_survives_a_restart_and_one_the_log_lost_is_410(
    fleets: Fleets, stack: EmbeddedStack
) -> None:
    fleet, run = fleets.theirs, f"r{uuid.uuid4().hex[:6]}"
    for n in (1, 2):
        await append(
            fleet, "order", f"{run}-{n}", {"type": "OrderPlaced", "data": {"items": order_items()}}
        )
    await all_stored(fleet, {("order", f"{run}-1"): 1, ("order", f"{run}-2"): 1})
    first = await page(fleet, id_prefix=run, limit=1)
    assert first.refs == [("order", f"{run}-1", 1)] or first.refs == [("order", f"{run}-2", 1)]
    assert await fleet.stop() == 0
    await fleet.start()
    rest, end = await walk(fleet, first.body["next"], id_prefix=run)
    assert {e["aggregate_id"] for e in rest} | {first.refs[0][1]} == {f"{run}-1", f"{run}-2"}
    assert len(rest) == 1  # resumed after the first: nothing again, nothing missed
    assert await fleet.stop() == 0
    await recreate_topics(stack, fleet.prefix)  # its log, new: 3 partitions where it had 4
    fleet.env["EVENTFLEET_PARTITIONS"] = "3"
    await fleet.start()
    outdated = await page(fleet, after=end)
    assert (outdated.status, outdated.body["error"]) == (410, "position_outdated")
    assert "had 4 partitions; it has 3 now" in outdated.body["message"]
    client = await sse(f"{fleet.url}/v1/events/subscribe",
                       headers={"Last-Event-ID": end, **fleet.auth_headers})  # fmt: skip
    await client.close()
    assert (client.status, client.body["error"]) == (410, "position_outdated")
    fresh = await page(fleet)  # from the beginning: the new log
    assert fresh.status == 200 and fresh.body["events"] == []


async def recreate_topics(stack: EmbeddedStack, prefix: str) -> None:
    """Delete every topic of the fleet's prefix (it recreates them when it starts)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.urls.kafka_url.removeprefix("kafka://"))
    await admin.start()
    try:
        mine = [t for t in await admin.list_topics() if t.startswith(prefix)]
        await admin.delete_topics(mine)
    finally:
        await admin.close()


async def test_the_client_walks_and_follows_the_global_read(fleets: Fleets) -> None:
    fleet, run = fleets.ours, f"c{uuid.uuid4().hex[:6]}"
    placed = {"type": "OrderPlaced", "data": {"items": order_items()}}
    for n in (1, 2, 3):
        await append(fleet, "order", f"{run}-{n}", placed)
    await all_stored(fleet, {("order", f"{run}-{n}"): 1 for n in (1, 2, 3)})
    async with AsyncClient(fleet.url, token=fleet.token) as client:
        walked = [g async for g in client.global_events(id_prefix=run, page_size=2)]
        assert sorted(g.event.aggregate_id for g in walked) == [f"{run}-{n}" for n in (1, 2, 3)]
        rest = [g async for g in client.global_events(walked[0].position, id_prefix=run)]
        assert [g.event.id for g in rest] == [g.event.id for g in walked[1:]]
        first = await client.global_page(limit=1, id_prefix=run, aggregate_types=["order"])
        assert first.more and len(first.events) == 1 and first.positions[0] == first.next
        stream = client.subscribe_all(walked[1].position, id_prefix=run, event_types="OrderPlaced")
        followed: list[GlobalEvent] = []
        async for item in stream:
            followed.append(item)
            if len(followed) == 1:  # caught up: the next is stored while subscribed
                await append(fleet, "order", f"{run}-4", placed)
            if len(followed) == 2:
                break
        await stream.aclose()
        assert [g.event.aggregate_id for g in followed] == [
            walked[2].event.aggregate_id,
            f"{run}-4",
        ]
        tail = [g async for g in client.global_events(followed[0].position, id_prefix=run)]
        assert [g.event.aggregate_id for g in tail] == [f"{run}-4"]  # an SSE id resumes a walk
        with pytest.raises(errors.BadRequestError, match="exactly as the fleet gave it"):
            await client.global_page(walked[0].position[:-4])
        with pytest.raises(errors.UnknownAggregateTypeError):
            [g async for g in client.global_events(aggregate_types=["ordre"])]

    def blocking() -> list[str]:
        with Client(fleet.url, token=lambda: fleet.token()) as client:
            seen = [g.event.aggregate_id for g in client.global_events(id_prefix=run)]
            with client.subscribe_all(walked[2].position, id_prefix=run) as live:
                seen.append(next(live).event.aggregate_id)
            return seen

    assert await asyncio.to_thread(blocking) == [
        *(g.event.aggregate_id for g in walked), f"{run}-4", f"{run}-4"]  # fmt: skip


async def eventfleet(
    fleet: FleetProcess, *args: str, token: str | None = None
) -> tuple[int, str, str]:
    """``eventfleet events ARGS`` against ``fleet``: exit code, stdout, stderr."""
    env = {**os.environ, "EVENTFLEET_TOKEN": token or fleet.token()}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "workers.cli", "events", "--url", fleet.url, *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await within(process.communicate(), timeout_s=60, what="eventfleet events to exit")
    return process.returncode or 0, out.decode(), err.decode()


async def test_the_cli_reads_the_global_read_and_goes_on_from_where_it_stopped(
    fleets: Fleets,
) -> None:
    fleet, run = fleets.ours, f"l{uuid.uuid4().hex[:6]}"
    placed = {"type": "OrderPlaced", "data": {"items": order_items()}}
    for n in (1, 2):
        await append(fleet, "order", f"{run}-{n}", placed)
    await append(fleet, "order", f"{run}-1", {"type": "OrderPaid", "data": {"amount": 12.5}})
    await all_stored(fleet, {("order", f"{run}-1"): 2, ("order", f"{run}-2"): 1})
    code, out, err = await eventfleet(fleet, "--id-prefix", run, "--type", "order")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 3 and all(f" order {run}-" in line for line in lines)
    assert [line.split()[4] for line in lines if f"{run}-1 " in line] == [
        "OrderPlaced",
        "OrderPaid",
    ]
    assert err.startswith("3 event(s); --after ")
    code, out, err = await eventfleet(fleet, "--id-prefix", run, "--json", "--limit", "1",
                                      "--event-type", "OrderPlaced")  # fmt: skip
    assert code == 0, err
    [first] = [orjson.loads(line) for line in out.splitlines()]
    assert first["event"]["type"] == "OrderPlaced" and first["position"] in err
    code, out, _ = await eventfleet(fleet, "--id-prefix", run, "--after", first["position"])
    assert code == 0 and len(out.splitlines()) == 2  # the rest, from where it stopped
    code, out, err = await eventfleet(fleet, "--after", first["position"][:-4])
    assert (code, out) == (1, "") and "400 bad_request" in err and "exactly as" in err
    code, _, err = await eventfleet(fleet, "--type", "order,account")
    assert code == 2 and "without commas" in err
    code, _, err = await eventfleet(fleet, "--limit", "0")
    assert code == 2 and "at least 1" in err
    follow = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "workers.cli", "events", "--url", fleet.url, "--follow",
        "--id-prefix", run, env={**os.environ, "EVENTFLEET_TOKEN": fleet.token()},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert follow.stdout is not None
    try:
        caught_up = [
            await within(follow.stdout.readline(), timeout_s=30, what="a caught-up line")
            for _ in range(3)
        ]
        await append(fleet, "order", f"{run}-2", {"type": "OrderPaid", "data": {"amount": 1}})
        live = await within(follow.stdout.readline(), timeout_s=30, what="the live line")
    finally:
        follow.send_signal(signal.SIGINT)
        code = await within(follow.wait(), timeout_s=30, what="the follow to end at Ctrl-C")
    assert len(caught_up) == 3 and f"order {run}-2 v2 OrderPaid" in live.decode()
    assert code == 130  # Ctrl-C ends a follow


async def test_a_quiet_follow_ends_at_ctrl_c_whichever_of_its_threads_the_signal_reaches(
    stack: EmbeddedStack,
) -> None:
    """The kernel hands a process its SIGINT in any thread that does not block it, and a follow
    that named its fleet by host name has the resolver's thread beside the main one. A handler
    that runs only once the main thread wakes for something else (``asyncio.run``'s) would wait
    for the next bytes on the socket: here the heartbeat, ten minutes away."""
    quiet = {**DOMAINS, "EVENTFLEET_LIVE_HEARTBEAT_S": "600"}
    fleet = FleetProcess.for_stack(stack, f"gr_{uuid.uuid4().hex[:8]}", **quiet)
    run = f"q{uuid.uuid4().hex[:6]}"
    await fleet.start()
    try:
        follow = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "workers.cli", "events", "--follow", "--id-prefix", run,
            "--url", fleet.url.replace("127.0.0.1", "localhost"),
            env={**os.environ, "EVENTFLEET_TOKEN": fleet.token()},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert follow.stdout is not None
        try:
            await append(
                fleet, "order", run, {"type": "OrderPlaced", "data": {"items": order_items()}}
            )
            # it resolved and reads
            line = await within(follow.stdout.readline(), timeout_s=30, what="the first line")
            others = [
                int(t) for t in os.listdir(f"/proc/{follow.pid}/task") if int(t) != follow.pid
            ]
            assert others, "the follow has no thread beside its main one: nothing is tested"
            tgkill = ctypes.CDLL(None, use_errno=True).tgkill  # a signal to one thread
            assert tgkill(follow.pid, others[0], signal.SIGINT) == 0
            code = await within(follow.wait(), timeout_s=30, what="the follow to end at Ctrl-C")
        finally:
            if follow.returncode is None:
                follow.kill()
                await follow.wait()
        assert f"order {run} v1 OrderPlaced" in line.decode() and code == 130
    finally:
        assert await fleet.stop() == 0, fleet.log_tail()


async def console(fleet: FleetProcess, query: str) -> tuple[int, str]:
    async with aiohttp.ClientSession(headers=fleet.auth_headers) as session:
        async with session.get(f"{fleet.url}/console/log?{query}") as r:
            assert r.content_type == "text/html"
            return r.status, await r.text()


async def test_the_console_lists_the_log_from_a_position_with_its_filters(fleets: Fleets) -> None:
    fleet, run = fleets.ours, f"k{uuid.uuid4().hex[:6]}"
    placed = {"type": "OrderPlaced", "data": {"items": order_items()}}
    for n in (1, 2):
        await append(fleet, "order", f"{run}-{n}", placed)
    await append(fleet, "account", f"{run}-a", {"type": "AccountOpened", "data": {"owner": "ada"}})
    await all_stored(fleet, {("order", f"{run}-1"): 1, ("order", f"{run}-2"): 1,
                             ("account", f"{run}-a"): 1})  # fmt: skip
    status, page = await console(fleet, urlencode({"prefix": run, "type": "order"}))
    assert status == 200 and 'id="log"' in page
    assert f"order {run}-1" in page and f"order {run}-2" in page and f"{run}-a" not in page
    assert "the end of the log" in page
    first = re.search(r'<a href="\?([^"]*after=[^"]*)">from here</a>', page)
    assert first is not None
    _, rest = await console(fleet, first.group(1).replace("&amp;", "&"))
    assert rest.count(f"order {run}-") == 1  # only the one after the first
    for query, wanted in (("after=garbage", 400), ("type=nope", 404), ("event_type=Nope", 400)):
        status, page = await console(fleet, query)
        assert status == wanted and 'id="error"' in page, (query, page[-300:])
