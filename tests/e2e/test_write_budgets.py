"""One principal cannot slow the others (issue 46): write budgets on real fleet processes.

Each principal's appends draw on a token bucket shared by every commands process (Redis); over
it, ``429 too_many_writes`` with ``retry_after_s`` and nothing is claimed, marked, produced or
stored; another principal is not refused; overrides by principal and by role hold; two
processes share one budget; with Redis paused, async writes answer 503 as before and sync
writes are judged by each process's own bucket (fail open, counted); a bad budget setting stops
the worker at start with one line.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from redis.asyncio import Redis

from tests.fleet import FleetProcess, running_fleet, start_together
from tests.kafka_topics import read_records
from tests.tokens import bearer
from tests.waiting import wait_for, within
from topics.catalog import TopicNames
from workers.devtools.embedded import EmbeddedStack

PLACED = {"type": "OrderPlaced", "data": {"items": [{"sku": "tea", "qty": 1, "price": 2}]}}
BUDGETS = {
    "EVENTFLEET_WRITE_BUDGET_PER_S": "1",  # a second per write: nothing refills during a test
    "EVENTFLEET_WRITE_BUDGET_BURST": "3",
    "EVENTFLEET_WRITE_BUDGET_PRINCIPALS": "carol=1/1",
    "EVENTFLEET_WRITE_BUDGET_ROLES": "bulk=0,small=1/2",
}


@pytest.fixture
async def own_redis(stack: EmbeddedStack) -> AsyncIterator[EmbeddedStack]:
    """The session's Kafka and MongoDB, with a redis-server this test may pause."""
    async with EmbeddedStack(
        kafka_url=stack.urls.kafka_url, mongo_url=stack.urls.mongo_url, start_redis=True
    ) as own:
        yield own


async def place(fleet: FleetProcess, order: str, who: str, roles: tuple[str, ...] = ()) -> Any:
    body = {**PLACED, "command_id": f"{order}-placed"}
    return await fleet.post(f"/v1/order/{order}/events", body, token=fleet.token(who, roles))


async def open_account(fleet: FleetProcess, account: str, who: str) -> tuple[int, Any]:
    body = {"type": "AccountOpened", "data": {"owner": who}}
    return await fleet.post(f"/v1/account/{account}/events", body, token=fleet.token(who, ()))


def refusals(metrics: str, principal: str) -> float:
    line = f'eventfleet_write_budget_refusals_total{{principal="{principal}"}} '
    found = [row for row in metrics.splitlines() if row.startswith(line)]
    return float(found[0].split()[-1]) if found else 0.0


async def test_a_flood_is_refused_changes_nothing_and_refuses_nobody_else(
    stack: EmbeddedStack, unique_name: str
) -> None:
    async with running_fleet(stack, unique_name, **BUDGETS) as fleet:
        run = uuid.uuid4().hex[:6]
        started = time.monotonic()
        flood = await asyncio.gather(*(place(fleet, f"{run}-{n}", "ann") for n in range(15)))
        elapsed_s = time.monotonic() - started
        accepted = [n for n, (status, _) in enumerate(flood) if status == 202]
        refused = [n for n, (status, _) in enumerate(flood) if status == 429]
        assert len(accepted) + len(refused) == 15, flood
        assert 3 <= len(accepted) <= 3 + int(elapsed_s), (accepted, elapsed_s)  # the burst
        body = flood[refused[0]][1]
        assert body["error"] == "too_many_writes" and body["retry_after_s"] >= 1, body
        assert (body["rate_per_s"], body["burst"]) == (1, 3)
        assert "'ann'" in body["message"] and "EVENTFLEET_WRITE_BUDGET" in body["message"]
        others = await asyncio.gather(*(place(fleet, f"{run}-b{n}", "bob") for n in range(3)))
        assert [status for status, _ in others] == [202, 202, 202], others
        # Over budget, nothing was claimed, marked or produced: nothing is known of it.
        n = refused[0]
        status, outcome = await fleet.get(
            f"/v1/order/{run}-{n}/outcome?command_id={run}-{n}-placed", token=fleet.token("ann")
        )
        assert status == 404, outcome
        redis = Redis.from_url(stack.urls.redis_url)
        try:
            keys = {k.decode() async for k in redis.scan_iter(match=f"{fleet.prefix}*{run}-*")}
        finally:
            await redis.aclose()
        touched = {n for n in range(15) if any(f"{{order:{run}-{n}}}" in k for k in keys)}
        assert touched == set(accepted), keys  # marks and claims of the accepted ones only
        records = await read_records(stack.urls.kafka_url, TopicNames(fleet.prefix).events)
        produced = {r.key.decode() for r in records if r.key and run in r.key.decode()}
        wanted = {f"order:{run}-{n}" for n in accepted} | {f"order:{run}-b{n}" for n in range(3)}
        assert produced == wanted
        # Sync mode too: refused before anything is read or stored.
        opened = await asyncio.gather(
            *(open_account(fleet, f"{run}-a{n}", "dan") for n in range(6))
        )
        stored = [n for n, (status, _) in enumerate(opened) if status == 201]
        assert len(stored) >= 3 and {s for s, _ in opened} <= {201, 429}, opened
        for n in set(range(6)) - set(stored):
            status, _ = await fleet.get(f"/v1/account/{run}-a{n}/events", token=fleet.token("dan"))
            assert status == 404
        _, metrics = await fleet.get("/metrics")
        assert refusals(metrics, "ann") == len(refused)
        assert refusals(metrics, "dan") == 6 - len(stored) and refusals(metrics, "bob") == 0
        assert 'outcome="rejected_too_many_writes"' in metrics
        # The HTTP answer says when to come back: Retry-After, the body's retry_after_s.
        headers = {**bearer(fleet.token("ann", ())), "Content-Type": "application/json"}
        async with aiohttp.ClientSession() as session:
            for n in range(20):  # at 1 a second, within 20 at once one is refused
                async with session.post(
                    f"{fleet.url}/v1/order/{run}-ra{n}/events", data=orjson.dumps(PLACED),
                    headers=headers,
                ) as answer:  # fmt: skip
                    if answer.status == 429:
                        again = orjson.loads(await answer.read())
                        break
            assert answer.status == 429, answer.status
        assert answer.headers["Retry-After"] == str(again["retry_after_s"]), again


async def test_overrides_by_principal_and_by_role(stack: EmbeddedStack, unique_name: str) -> None:
    async with running_fleet(stack, unique_name, roles="commands", **BUDGETS) as fleet:
        run = uuid.uuid4().hex[:6]

        async def accepted(who: str, roles: tuple[str, ...], n: int) -> int:
            answers = await asyncio.gather(
                *(place(fleet, f"{run}-{who}{i}", who, roles) for i in range(n))
            )
            assert {status for status, _ in answers} <= {202, 429}, answers
            return sum(1 for status, _ in answers if status == 202)

        started = time.monotonic()
        assert await accepted("kim", ("bulk", "small"), 10) == 10  # no budget: the largest
        assert 2 <= await accepted("sam", ("small",), 5) <= 2 + int(time.monotonic() - started)
        # carol's own entry (1/1) wins over the role that would free her.
        assert 1 <= await accepted("carol", ("bulk",), 4) <= 1 + int(time.monotonic() - started)


async def test_two_commands_processes_share_one_budget(
    stack: EmbeddedStack, unique_name: str
) -> None:
    budget = {"EVENTFLEET_WRITE_BUDGET_PER_S": "1", "EVENTFLEET_WRITE_BUDGET_BURST": "6"}
    one = FleetProcess.for_stack(stack, unique_name, roles="commands", **budget)
    other = FleetProcess.for_stack(stack, unique_name, roles="commands", **budget)
    await start_together(one, other)
    try:
        run = uuid.uuid4().hex[:6]
        started = time.monotonic()
        answers = await asyncio.gather(
            *(place((one, other)[n % 2], f"{run}-{n}", "ann") for n in range(20))
        )
        elapsed_s = time.monotonic() - started
        assert {status for status, _ in answers} == {202, 429}, answers
        accepted = [n for n, (status, _) in enumerate(answers) if status == 202]
        # One bucket for both: six in all (each alone would have let six through).
        assert 6 <= len(accepted) <= 6 + int(elapsed_s), (accepted, elapsed_s)
        refused_by = {n % 2 for n, (status, _) in enumerate(answers) if status == 429}
        assert refused_by == {0, 1}  # each process refused once the shared bucket was empty
    finally:
        assert await one.stop() == 0 and await other.stop() == 0


def local(metrics: str, decision: str) -> float:
    line = f'eventfleet_write_budget_local_total{{decision="{decision}"}} '
    found = [row for row in metrics.splitlines() if row.startswith(line)]
    return float(found[0].split()[-1]) if found else 0.0


async def test_with_redis_paused_sync_writes_are_judged_per_process_and_async_ones_answer_503(
    own_redis: EmbeddedStack, unique_name: str
) -> None:
    fast = {"EVENTFLEET_REDIS_TIMEOUT_MS": "300", "EVENTFLEET_WRITE_BUDGET_PER_S": "1",
            "EVENTFLEET_WRITE_BUDGET_BURST": "2"}  # fmt: skip
    async with running_fleet(own_redis, unique_name, roles="commands", **fast) as fleet:
        run = uuid.uuid4().hex[:6]
        redis = own_redis.process("redis")
        redis.pause()
        try:
            opened = await asyncio.gather(
                *(open_account(fleet, f"{run}-p{n}", "eve") for n in range(4))
            )
            assert sorted(s for s, _ in opened) == [201, 201, 429, 429], opened  # its own bucket
            status, body = await place(fleet, f"{run}-o1", "gus")
            assert (status, body["error"]) == (503, "marker_unavailable"), body
            _, metrics = await fleet.get("/metrics")
            assert (local(metrics, "taken"), local(metrics, "refused")) == (2, 2)
        finally:
            redis.resume()
        assert "sync writes are judged by this process's own buckets" in fleet.log_tail(400)
        tried = iter(range(100))

        async def judged_by_redis_again() -> bool:
            _, before = await fleet.get("/metrics")
            n = next(tried)
            status, _ = await open_account(fleet, f"{run}-r{n}", f"fay{n}")
            _, after = await fleet.get("/metrics")
            return status == 201 and local(after, "taken") == local(before, "taken")

        await wait_for(judged_by_redis_again, timeout_s=20, what="the fleet's buckets again")


async def test_a_bad_budget_setting_stops_the_worker_with_one_line() -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EVENTFLEET_")}
    for name, value, words in (
        ("EVENTFLEET_WRITE_BUDGET_ROLES", "bulk=fast", "is not name=rate or name=rate/burst"),
        ("EVENTFLEET_WRITE_BUDGET_PRINCIPALS", "ann=5,ann=6", "named twice"),
        ("EVENTFLEET_WRITE_BUDGET_BURST", "0", "expected a number from 1"),
        ("EVENTFLEET_TICKETS_MAX_HELD", "none", "expected a whole number"),
    ):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "workers.cli", "worker", "--role", "commands",
            env={**clean, "EVENTFLEET_AUTH": "none", name: value,
                 "EVENTFLEET_DOMAINS": "workers.examples.domains:default_domains"},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await within(
            process.communicate(), timeout_s=60, what="the refused worker to exit"
        )
        lines = err.decode().strip().splitlines()
        assert process.returncode == 2, err
        assert len(lines) == 1 and name in lines[0] and words in lines[0], lines
