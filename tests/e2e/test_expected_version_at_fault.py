"""Of concurrent appends that expect one version, exactly one is stored, in both modes, under the
faults the suite already runs (issue 47): two commands processes, Redis keys deleted mid-run,
a stalled appender (SIGSTOP). Every answer is true: a 409 names the version the winner made;
an event the door accepted on stale knowledge is refused by the store, and its command is told.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from collections import Counter

from redis.asyncio import Redis

from tests.auditing import audit, errors
from tests.e2e.expecting import (
    ALL_DOMAINS,
    DEPOSIT,
    ITEM,
    STALE,
    Told,
    one_stored_per_round,
    race,
    refused_truly,
    send,
    stored_versions,
)
from tests.fleet import FleetProcess, start_together
from tests.waiting import wait_for
from workers.devtools.embedded import EmbeddedStack, free_port
from workers.examples.domains import all_domains

ROUNDS, PER_ROUND = 3, 12


def commands_pair_and_appender(
    stack: EmbeddedStack, name: str
) -> tuple[FleetProcess, FleetProcess, FleetProcess]:
    """Two commands processes and one appender on one store, marker and broker."""
    first = FleetProcess.for_stack(stack, name, roles="commands", **ALL_DOMAINS)
    second = FleetProcess(env={**first.env, "EVENTFLEET_HTTP_PORT": str(free_port())},
                          roles="commands")  # fmt: skip
    appender = FleetProcess(env={**first.env, "EVENTFLEET_HTTP_PORT": str(free_port())},
                            roles="appender")  # fmt: skip
    return first, second, appender


async def open_cart(fleet: FleetProcess, stack: EmbeddedStack, name: str) -> str:
    cart = f"c-{uuid.uuid4().hex[:8]}"
    body = {"type": "CartOpened", "data": {"customer_id": "u"}, "expected_version": 0}
    assert (await send(fleet, f"/v1/cart/{cart}/events", body)).status == 202

    async def opened() -> bool:
        return len(await stored_versions(stack, name, "cart", cart)) == 1

    await wait_for(opened, timeout_s=30, what=f"cart {cart} opened")
    return cart


async def open_account(fleet: FleetProcess) -> str:
    account = f"a-{uuid.uuid4().hex[:8]}"
    body = {"type": "AccountOpened", "data": {"owner": "o"}, "expected_version": 0}
    assert (await send(fleet, f"/v1/account/{account}/events", body)).status == 201
    return account


async def races_in_both_modes(
    stack: EmbeddedStack, name: str, fleets: list[FleetProcess], tally: Counter[str]
) -> list[tuple[str, str]]:
    """ROUNDS rounds of PER_ROUND appends expecting one version, on a cart and an account at
    once, spread over ``fleets``; each round judged. Returns the aggregates raced."""
    cart, account = await open_cart(fleets[0], stack, name), await open_account(fleets[0])

    async def cart_rounds() -> None:
        for expected in range(1, ROUNDS + 1):
            answers = await race(fleets, f"/v1/cart/{cart}/events", ITEM, expected=expected,
                                 n=PER_ROUND, run=f"{cart}-{expected}")  # fmt: skip
            tally.update(f"async {t.status}" for t in answers)
            winner = await one_stored_per_round(stack, name, fleets[0], ("cart", cart), answers,
                                                expected=expected)  # fmt: skip
            accepted = sum(t.status == 202 and t.body["event_id"] != winner for t in answers)
            tally["async accepted, refused at the store"] += accepted

    async def account_rounds() -> None:
        for expected in range(1, ROUNDS + 1):
            answers = await race(fleets, f"/v1/account/{account}/events", DEPOSIT,
                                 expected=expected, n=PER_ROUND, run=f"{account}-{expected}")  # fmt: skip
            tally.update(f"sync {t.status}" for t in answers)
            assert [t.body["version"] for t in answers if t.status == 201] == [expected + 1]
            assert all(refused_truly(t, expected=expected) for t in answers if t.status != 201)

    await asyncio.gather(cart_rounds(), account_rounds())
    for kind, aggregate in (("cart", cart), ("account", account)):
        history = await stored_versions(stack, name, kind, aggregate)
        assert [(v, e) for v, e, _ in history] == [(v, v - 1) for v in range(1, ROUNDS + 2)]
    return [("cart", cart), ("account", account)]


async def test_two_commands_processes_store_one_append_per_expectation_in_both_modes(
    private_stack: EmbeddedStack, unique_name: str
) -> None:
    first, second, appender = commands_pair_and_appender(private_stack, unique_name)
    await start_together(first, second, appender)
    try:
        tally: Counter[str] = Counter()
        refs = await races_in_both_modes(private_stack, unique_name, [first, second], tally)
        print(f"\ntwo commands processes, {ROUNDS} rounds of {PER_ROUND} per mode: {dict(tally)}")
        report = await audit(private_stack, unique_name, domains=all_domains(), topics=False,
                             views=False, refs=refs)  # fmt: skip
        assert errors(report) == []
    finally:
        for process in (second, first, appender):
            assert await process.stop() == 0


async def test_redis_keys_deleted_mid_run_never_store_two_appends_of_one_expectation(
    private_stack: EmbeddedStack, unique_name: str
) -> None:
    """Marks and command records vanish again and again while the rounds run: the door then
    counts from a store head that trails events in flight, accepts more than one append of an
    expectation, and the store refuses all but the first."""
    first, second, appender = commands_pair_and_appender(private_stack, unique_name)
    await start_together(first, second, appender)
    redis = Redis.from_url(private_stack.urls.redis_url)
    deleted = 0

    async def lose_keys() -> None:
        nonlocal deleted
        while True:
            for pattern in (f"{unique_name}.*:mark:*", f"{unique_name}.*:cmd:*"):
                keys = [k async for k in redis.scan_iter(match=pattern, count=1000)]
                if keys:
                    deleted += await redis.delete(*keys)
            await asyncio.sleep(0.005)  # the fault's rhythm, not a wait for anything

    loser = asyncio.create_task(lose_keys())
    try:
        tally: Counter[str] = Counter()
        refs = await races_in_both_modes(private_stack, unique_name, [first, second], tally)
        loser.cancel()
        print(f"\nredis keys deleted mid-run ({deleted} keys): {dict(tally)}")
        assert deleted > 0
        report = await audit(private_stack, unique_name, domains=all_domains(), topics=False,
                             views=False, refs=refs)  # fmt: skip
        assert errors(report) == []
    finally:
        loser.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loser
        await redis.aclose()
        for process in (second, first, appender):
            assert await process.stop() == 0


async def test_a_stalled_appender_and_a_lost_mark_store_one_and_refuse_the_other_at_the_store(
    private_stack: EmbeddedStack, unique_name: str
) -> None:
    first, _, appender = commands_pair_and_appender(private_stack, unique_name)
    await start_together(first, appender)
    redis = Redis.from_url(private_stack.urls.redis_url)
    try:
        cart = await open_cart(first, private_stack, unique_name)
        path = f"/v1/cart/{cart}/events"
        assert appender.process is not None
        appender.process.send_signal(signal.SIGSTOP)  # nothing more is stored
        try:
            bodies = [{**ITEM, "expected_version": 1, "command_id": f"s-{i}"} for i in range(8)]
            stalled = await asyncio.gather(*(first.post(path, b) for b in bodies))
            told = Counter(f"{s} {b.get('error', '')}".strip() for s, b in stalled)
            # One marked; the others' refusal is not sure while the store cannot decide it.
            assert told == {"202": 1, "503 store_catching_up": 7}, stalled
            [winner] = [b["event_id"] for s, b in stalled if s == 202]
            async for key in redis.scan_iter(match=f"{unique_name}.*:mark:*"):
                await redis.delete(key)  # the mark is lost: the door counts from the store
            late = await first.post(path, {**ITEM, "expected_version": 1, "command_id": "late"})
            assert late[0] == 202, late  # accepted on stale knowledge: the head is version 1
            account = await open_account(first)  # sync writes need no appender
            deposits = await race([first], f"/v1/account/{account}/events", DEPOSIT,
                                  expected=1, n=8, run="d")  # fmt: skip
            assert sorted(t.status for t in deposits) == [201] + [409] * 7
        finally:
            appender.process.send_signal(signal.SIGCONT)
        retried = await asyncio.gather(*(send(first, path, b) for b, (s, _) in
                                         zip(bodies, stalled, strict=True) if s == 503))  # fmt: skip
        assert all(refused_truly(t, expected=1) for t in retried), retried
        answers = [Told(b["command_id"], s, a) for b, (s, a) in zip(bodies, stalled, strict=True)
                   if s == 202] + [Told("late", *late), *retried]  # fmt: skip
        stored = await one_stored_per_round(private_stack, unique_name, first, ("cart", cart),
                                            answers, expected=1)  # fmt: skip
        assert stored == winner
        again = await send(first, path, {**ITEM, "expected_version": 1, "command_id": "late"})
        assert (again.status, again.body["error"], again.body["current_version"]) == (409, STALE, 2)
        assert "(checked at the store)" in again.body["message"]
        report = await audit(private_stack, unique_name, domains=all_domains(), topics=False,
                             views=False, refs=[("cart", cart), ("account", account)])  # fmt: skip
        assert errors(report) == []
    finally:
        await redis.aclose()
        for process in (first, appender):
            assert await process.stop() == 0
