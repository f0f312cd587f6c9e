"""Read your writes over HTTP: a read right after its appends names what it must see, and waits.

Waiters are bounded per process and principal (``429 too_many_waiters`` with ``Retry-After``),
woken by the live feed, and released when their client leaves.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from tests.e2e.pipeline import post_all
from tests.fleet import LIFECYCLE, FleetProcess, running_fleet
from tests.tokens import TESTER, bearer
from tests.waiting import wait_for, within
from workers.devtools.embedded import EmbeddedStack


async def post_lifecycle(fleet: FleetProcess, order: str, *, command_ids: bool = False) -> None:
    for n, (kind, data) in enumerate(LIFECYCLE):
        body = {"type": kind, "data": data}
        if command_ids:
            body["command_id"] = f"{order}-c{n}"
        status, answer = await fleet.post(f"/v1/order/{order}/events", body)
        assert status == 202, answer


async def test_state_right_after_the_appends_answers_the_version_asked_for(
    fleet: FleetProcess,
) -> None:
    order = f"ryw-{uuid.uuid4().hex[:8]}"
    await post_lifecycle(fleet, order)
    wanted = len(LIFECYCLE)
    status, body = await fleet.get(f"/v1/order/{order}/state?min_version={wanted}&wait_ms=20000")
    assert status == 200, body
    assert body["version"] == wanted and body["state"]["status"] == "delivered"
    status, body = await fleet.get(f"/v1/order/{order}/events?min_version={wanted}&wait_ms=20000")
    assert status == 200 and [e["version"] for e in body["events"]] == [1, 2, 3, 4]


async def test_a_command_id_waits_for_that_commands_event(fleet: FleetProcess) -> None:
    order = f"ryw-{uuid.uuid4().hex[:8]}"
    await post_lifecycle(fleet, order, command_ids=True)
    last = f"{order}-c{len(LIFECYCLE) - 1}"
    status, body = await fleet.get(f"/v1/order/{order}/state?command_id={last}&wait_ms=20000")
    assert status == 200, body
    assert body["version"] == len(LIFECYCLE)
    status, body = await fleet.get(f"/v1/order/{order}/events?command_id={order}-c0&wait_ms=20000")
    assert status == 200 and body["events"][0]["metadata"]["command_id"] == f"{order}-c0"


async def test_a_version_not_stored_within_the_bound_is_504_with_what_is_stored(
    fleet: FleetProcess,
) -> None:
    order = f"ryw-{uuid.uuid4().hex[:8]}"
    await post_lifecycle(fleet, order)
    await fleet.get(f"/v1/order/{order}/state?min_version=4&wait_ms=20000")
    status, body = await fleet.get(f"/v1/order/{order}/state?min_version=9&wait_ms=50")
    assert status == 504, body
    assert body["error"] == "not_yet_stored"
    assert body["stored_version"] == 4 and body["wanted_version"] == 9
    assert "wait_ms=50" in body["message"]
    # A command never sent is not waited on forever either.
    status, body = await fleet.get(f"/v1/order/{order}/events?command_id=never&wait_ms=30")
    assert status == 504 and body["error"] == "not_yet_stored", body
    assert "outcome?command_id=never" in body["message"]


async def test_an_aggregate_with_nothing_stored_waits_then_504s(fleet: FleetProcess) -> None:
    status, body = await fleet.get(
        f"/v1/order/none-{uuid.uuid4().hex[:6]}/state?min_version=1&wait_ms=0"
    )
    assert status == 504 and body["stored_version"] == 0, body


async def test_a_view_route_waits_until_its_view_folded_the_version(fleet: FleetProcess) -> None:
    room = f"ryw-room-{uuid.uuid4().hex[:6]}"
    steps = [
        ("MessageSent", {"message_id": f"r{n}", "sender_id": "ann" if n % 2 else "bob",
                         "content": f"hi {n}"})
        for n in range(6)
    ]  # fmt: skip
    await post_all(fleet, room, steps)  # each message sent with its sender's token
    wanted = len(steps)
    status, body = await fleet.get(
        f"/v1/rooms/{room}/messages?limit=2&min_version={wanted}&wait_ms=20000"
    )
    assert status == 200, body
    assert body["version"] == wanted and body["source"] == "view"
    assert len(body["messages"]) == 2  # the route's own parameters still apply


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("min_version=0", "min_version=0 must be between 1"),
        ("min_version=x", "min_version='x' must be a whole number"),
        ("min_version=%2B3", "must be a whole number"),
        ("min_version=2&wait_ms=30001", "wait_ms=30001 must be between 0 and 30000"),
        ("min_version=2&wait_ms=-1", "must be a whole number"),
        ("min_version=2&wait_ms=abc", "wait_ms='abc' must be a whole number"),
        ("min_version=2&wait_ms=1.5", "must be a whole number"),
        (f"min_version=2&wait_ms={'9' * 30}", "must be between 0 and 30000"),
        ("min_version=-3", "min_version='-3' must be a whole number"),
        (f"min_version={'9' * 30}", "must be between 1 and"),
        ("min_version=2&command_id=c", "not both"),
        ("wait_ms=100", "give one of them"),
        ("command_id=", "command_id must be 1 to 256 characters"),
        (f"command_id={'c' * 257}", "command_id must be 1 to 256 characters"),
    ],
)
async def test_bad_read_your_writes_parameters_are_400(
    fleet: FleetProcess, query: str, named: str
) -> None:
    for path in ("/v1/order/o-1/state", "/v1/order/o-1/events", "/v1/rooms/r-1/messages"):
        status, body = await fleet.get(f"{path}?{query}")
        assert status == 400, (path, body)
        assert body["error"] == "bad_request" and named in body["message"], (path, body)


PER_PRINCIPAL = 3


@pytest.fixture(scope="module")
async def bounded(stack: EmbeddedStack) -> AsyncIterator[FleetProcess]:
    """A fleet whose principals may have 3 reads waiting, and whose store is checked for them
    only every minute: within a test's bounds, only the live feed can wake a waiter."""
    async with running_fleet(
        stack, f"ryw_{uuid.uuid4().hex[:8]}",
        EVENTFLEET_RYW_MAX_WAITERS_PER_PRINCIPAL=str(PER_PRINCIPAL),
        EVENTFLEET_RYW_MAX_WAITERS="50",
        EVENTFLEET_RYW_POLL_MS="60000",
    ) as process:  # fmt: skip
        yield process


async def waiting_reads(fleet: FleetProcess) -> float:
    return await fleet.metric("eventfleet_ryw_waiters")


class Read:
    """One GET on its own connection: its answer when it comes, or its client gone."""

    def __init__(self, fleet: FleetProcess, path: str, principal: str) -> None:
        self.headers = bearer(fleet.token(principal))
        self.url = fleet.url + path
        self.status: int | None = None
        self.retry_after: str | None = None
        self.body: Any = None
        self.task = asyncio.create_task(self._get())

    async def _get(self) -> None:
        async with aiohttp.ClientSession() as session:
            async with session.get(
                self.url, headers=self.headers, timeout=aiohttp.ClientTimeout(total=60)
            ) as r:
                self.body = orjson.loads(await r.read())
                self.status, self.retry_after = r.status, r.headers.get("Retry-After")

    async def answer(self, timeout_s: float = 20) -> tuple[int | None, Any]:
        await within(asyncio.shield(self.task), timeout_s=timeout_s, what="the read's answer")
        return self.status, self.body

    async def leave(self) -> None:
        """The client closes its connection before the answer."""
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def test_past_the_per_principal_bound_reads_get_429_and_another_principal_gets_through(
    bounded: FleetProcess,
) -> None:
    await wait_for(lambda: waiting_reads_are(bounded, 0), timeout_s=30, what="no read waiting")
    refused_before = await bounded.metric("eventfleet_ryw_refused_total")
    never = f"never-{uuid.uuid4().hex[:8]}"
    held = [
        Read(bounded, f"/v1/order/{never}-{n}/state?min_version=1&wait_ms=30000", "alice")
        for n in range(PER_PRINCIPAL)
    ]
    try:
        await wait_for(lambda: waiting_reads_are(bounded, PER_PRINCIPAL), timeout_s=20,
                       what="alice's reads waiting")  # fmt: skip
        room = f"ryw-room-{uuid.uuid4().hex[:6]}"
        for path in (
            f"/v1/order/{never}-x/state?min_version=1&wait_ms=30000",
            f"/v1/order/{never}-x/events?command_id=c-1&wait_ms=30000",
            f"/v1/rooms/{room}/messages?min_version=1&wait_ms=30000",  # a domain's route
        ):
            refused = Read(bounded, path, "alice")
            status, body = await refused.answer()
            assert status == 429, (path, body)
            assert body["error"] == "too_many_waiters" and body["limit"] == "principal", body
            assert "EVENTFLEET_RYW_MAX_WAITERS_PER_PRINCIPAL" in body["message"], body
            assert refused.retry_after == str(body["retry_after_s"]) == "1", path
        # bob is not held back by alice's bound: his read waits, and ends when its event is
        # stored (announced on the feed: the store is checked only every minute).
        order = f"ryw-{uuid.uuid4().hex[:8]}"
        bobs = Read(bounded, f"/v1/order/{order}/state?min_version=1&wait_ms=30000", "bob")
        await wait_for(lambda: waiting_reads_are(bounded, PER_PRINCIPAL + 1), timeout_s=20,
                       what="bob's read waiting")  # fmt: skip
        kind, data = LIFECYCLE[0]
        status, _ = await bounded.post(f"/v1/order/{order}/events", {"type": kind, "data": data})
        assert status == 202
        status, body = await bobs.answer()
        assert status == 200 and body["version"] == 1, body
        assert await waiting_reads(bounded) == PER_PRINCIPAL  # alice's, still waiting
        assert await bounded.metric("eventfleet_ryw_refused_total") == refused_before + 3
    finally:
        for read in held:
            await read.leave()
    # Their clients left: the reads are released (nothing cancels a handler in aiohttp; the
    # waiter notices the closed connection), and alice may wait again.
    await wait_for(lambda: waiting_reads_are(bounded, 0), timeout_s=20,
                   what="the reads of clients that left released")  # fmt: skip
    again = Read(bounded, f"/v1/order/{never}-0/state?min_version=1&wait_ms=200", "alice")
    status, body = await again.answer()
    assert status == 504 and body["error"] == "not_yet_stored", body


async def waiting_reads_are(fleet: FleetProcess, n: int) -> bool:
    return await waiting_reads(fleet) == n


async def test_a_waiting_read_is_woken_by_the_feed_when_its_event_is_stored(
    bounded: FleetProcess,
) -> None:
    await wait_for(lambda: waiting_reads_are(bounded, 0), timeout_s=30, what="no read waiting")
    order = f"ryw-{uuid.uuid4().hex[:8]}"
    reads = [
        Read(bounded, f"/v1/order/{order}/state?min_version=2&wait_ms=30000", "carol"),
        # A command id is its sender's: the reader is the principal that sends the commands.
        Read(bounded, f"/v1/order/{order}/events?command_id={order}-c1&wait_ms=30000", TESTER),
    ]
    await wait_for(lambda: waiting_reads_are(bounded, 2), timeout_s=20, what="both waiting")
    await post_lifecycle(bounded, order, command_ids=True)
    # The store is checked for them once a minute: only the announcements can answer in time.
    status, body = await reads[0].answer(timeout_s=20)
    assert status == 200 and body["version"] >= 2, body
    status, body = await reads[1].answer(timeout_s=20)
    assert status == 200, body
    assert body["events"][0]["metadata"]["command_id"] == f"{order}-c0"
    await wait_for(lambda: waiting_reads_are(bounded, 0), timeout_s=20, what="none waiting")


async def test_bad_read_your_writes_parameters_change_nothing(bounded: FleetProcess) -> None:
    await wait_for(lambda: waiting_reads_are(bounded, 0), timeout_s=30, what="no read waiting")
    refused = await bounded.metric("eventfleet_ryw_refused_total")
    checks = await bounded.metric("eventfleet_ryw_store_checks_total")
    for query in ("min_version=1&wait_ms=-1", "min_version=1&wait_ms=99999999999",
                  "min_version=1&wait_ms=x", "min_version=0&wait_ms=30000",
                  "min_version=1.0&wait_ms=30000"):  # fmt: skip
        read = Read(bounded, f"/v1/order/o-bad/state?{query}", "dave")
        status, body = await read.answer()
        assert status == 400 and body["error"] == "bad_request", (query, body)
    assert await waiting_reads(bounded) == 0
    assert await bounded.metric("eventfleet_ryw_refused_total") == refused
    assert await bounded.metric("eventfleet_ryw_store_checks_total") == checks
