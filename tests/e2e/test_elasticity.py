"""Elasticity, tried from outside: appender processes joining a group with a backlog start in a
bound, and scaling 1 → 4 → 2 → 4 → 1 under live traffic stores every event once, in order.

The moment an autoscaler scales out is the moment a backlog waits: four processes join an
8-partition group holding a backlog at once. Each is timed from its launch to ready (assigned)
and to its first published event (``python -m tests.bench.elasticity`` measures it at 20,000
events over five runs).
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from dataclasses import dataclass, field

import aiohttp

from tests.auditing import audit, errors
from tests.e2e.scaling import COMMON, DRAIN_S, appender, join_a_backlog, stored_count
from tests.fleet import LIFECYCLE, FleetProcess
from tests.waiting import wait_for, within
from workers.adapters.mongo import connect, database
from workers.devtools.embedded import EmbeddedStack

BACKLOG = 5_000  # the bound's figure at 20,000, over 5 runs: python -m tests.bench.elasticity


async def test_four_appenders_joining_a_backlog_start_within_the_bound_and_store_it_once(
    private_stack: EmbeddedStack, unique_name: str
) -> None:
    ready, starts = await join_a_backlog(private_stack, unique_name, BACKLOG)
    print(f"elasticity: 4 appenders joining a {BACKLOG}-event backlog on 8 partitions: "
          f"ready p50 {statistics.median(ready):.1f} s max {ready[-1]:.1f} s; first event p50 "
          f"{statistics.median(starts):.1f} s max {starts[-1]:.1f} s")  # fmt: skip


async def _describe(processes: list[FleetProcess]) -> str:
    """What each appender says, or how it ended, for a failure message."""
    said = []
    for p in processes:
        if p.process is not None and p.process.returncode is not None:
            said.append(f"exited {p.process.returncode}:\n{p.log_tail(60)}")
            continue
        try:
            said.append(f"{(await p.get('/healthz?verbose'))[1]}")
        except (aiohttp.ClientError, OSError) as e:
            said.append(f"no answer ({e!r}):\n{p.log_tail(60)}")
    return "the appenders: " + "\n---\n".join(said)


@dataclass
class Traffic:
    """Orders driven through their lifecycle by a few clients until told to stop."""

    commands: FleetProcess
    accepted: set[str] = field(default_factory=set)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def client(self, n: int) -> None:
        run = uuid.uuid4().hex[:6]
        order = 0
        while not self.stop.is_set():
            order += 1
            for step, (kind, data) in enumerate(LIFECYCLE):
                command_id = f"{run}-{n}-{order}-{step}"
                body = {"type": kind, "data": data, "command_id": command_id}
                for _ in range(600):
                    status, answer = await self.commands.post(
                        f"/v1/order/e-{run}-{n}-{order}/events", body
                    )
                    if status == 202:
                        self.accepted.add(answer["event_id"])
                        break
                    assert status == 503, (status, answer)  # never a false refusal
                    await asyncio.sleep(0.05)  # a client backing off, not synchronisation
                else:
                    raise AssertionError(f"{command_id} never accepted")


async def test_scaling_one_four_two_four_one_under_traffic_stores_every_event_once_in_order(
    private_stack: EmbeddedStack, unique_name: str
) -> None:
    commands = await FleetProcess.for_stack(
        private_stack, unique_name, roles="commands", **COMMON
    ).start()
    running = [await appender(private_stack, unique_name).start()]
    traffic = Traffic(commands)
    clients = [asyncio.create_task(traffic.client(n)) for n in range(6)]
    try:

        async def progress() -> None:
            """More events stored than when asked: the group as it is now moves every partition."""
            before = await stored_count(private_stack, unique_name)

            async def moved() -> bool:
                return await stored_count(private_stack, unique_name) >= before + 40

            try:
                await wait_for(
                    moved, timeout_s=90, what=f"progress with {len(running)} appender(s)"
                )
            except AssertionError as e:
                for task in clients:  # a client that failed stopped the traffic: say why
                    if task.done() and task.exception() is not None:
                        raise AssertionError(
                            f"a traffic client failed: {task.exception()!r}"
                        ) from e
                raise AssertionError(f"{e}; stored {before}; {await _describe(running)}") from e

        async def scale_to(n: int) -> None:
            while len(running) < n:
                added = [appender(private_stack, unique_name) for _ in range(n - len(running))]
                for process in added:
                    await process.launch()
                for process in added:
                    await wait_for(process.ready, timeout_s=90, what="a joining appender ready")
                running.extend(added)
            while len(running) > n:
                leaving = running.pop()
                started = time.monotonic()
                assert await leaving.stop(timeout_s=DRAIN_S + 5) == 0, leaving.log_tail()
                took = time.monotonic() - started
                assert took <= DRAIN_S + 1.5, f"an appender took {took:.1f} s to leave"
            await progress()

        await progress()
        for n in (4, 2, 4, 1):
            await scale_to(n)
        traffic.stop.set()
        await within(asyncio.gather(*clients), timeout_s=60, what="the clients to stop")
        assert await commands.stop(timeout_s=DRAIN_S + 5) == 0, commands.log_tail()
        ids = set(traffic.accepted)

        async def all_stored() -> bool:
            client = connect(private_stack.urls.mongo_url, timeout_ms=10_000)
            try:
                stored = database(client, unique_name)["events"]
                found = {str(d["_id"]) async for d in stored.find({}, projection={"_id": 1})}
            finally:
                await client.close()
            assert found <= ids, f"stored events nobody was told were accepted: {found - ids}"
            return found == ids

        await wait_for(all_stored, timeout_s=120, what=f"every one of {len(ids)} accepted stored")
        print(f"elasticity: scaled 1→4→2→4→1 under traffic: {len(ids)} accepted, stored once")
    finally:
        traffic.stop.set()
        for task in clients:
            task.cancel()
        for process in [commands, *running]:
            process.kill()
    # In order, once each, contiguous versions, every history valid: the auditor.
    report = await audit(private_stack, unique_name, topics=False, views=False)
    assert errors(report) == []
