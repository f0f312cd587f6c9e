"""Every member of a role's group takes its share (issue 46), tried with fleet processes.

With P partitions and N ≤ P members, each member holds ⌊P/N⌋ or ⌈P/N⌉ partitions of the topic
its role consumes, every partition held once, within ``BOUND_S`` of a join or a leave (one by one
or together, by SIGTERM or SIGKILL), and answers ``/readyz`` 200 once it holds them. Only the
partitions that must move do: a join takes the joiner's share from the others, a leave hands the
leaver's on. A member beyond P holds none, is ready, and says it is idle.

Who holds what is read from each process's ``eventfleet_consumer_lag_events`` series: one per
partition its consumer is assigned, at the moment of the scrape; its
``eventfleet_assigned_partitions`` must say as many.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Sequence
from functools import partial

import aiohttp

from tests.fleet import FleetProcess, metric, samples
from tests.waiting import wait_for, within
from workers.devtools.embedded import EmbeddedStack
from workers.runtime.fleet import JOIN_BOUND_SESSIONS

SESSION_S = 3.0  # FleetProcess's EVENTFLEET_KAFKA_SESSION_TIMEOUT_MS
DRAIN_S = 5.0  # the members' EVENTFLEET_DRAIN_TIMEOUT_S
TANSU_JOIN_HOLD_S = 3.0  # Tansu holds a follower's JoinGroup this long (tests/e2e/test_join_heals)
BOUND_S = (
    max(SESSION_S, DRAIN_S) + JOIN_BOUND_SESSIONS * SESSION_S + 3 * TANSU_JOIN_HOLD_S + SESSION_S
)
"""From a join (the joiner's HTTP is up) or a leave (the signal) to a balanced group, each
member ready: the group hears of a leave when a killed member's session runs out or a stopped
one leaves at the end of its drain; a join on a group Tansu left without its leader heals after
JOIN_BOUND_SESSIONS session timeouts (workers.adapters.kafka.join); the join, the healing one
(under the departed leader's id) and the one after the healer leaves its own id each wait for
the broker's hold; and one more session for the members' heartbeats (a sixth of it), their
commits on revocation and the joiner's consumer start. 26 s here."""
START_S = 60  # launch → HTTP up, on a loaded 2-core machine (FleetProcess.start's bound)


def member(stack: EmbeddedStack, name: str, role: str, partitions: int) -> FleetProcess:
    return FleetProcess.for_stack(
        stack, name, roles=role, EVENTFLEET_PARTITIONS=str(partitions),
        EVENTFLEET_DRAIN_TIMEOUT_S=str(int(DRAIN_S)), EVENTFLEET_LOG_LEVEL="warning",
    )  # fmt: skip


async def held(process: FleetProcess, topic: str) -> set[int] | None:
    """The partitions of ``topic`` the process's consumer holds now; None if it does not answer
    or its gauge does not agree yet."""
    try:
        status, page = await process.get("/metrics")
    except (aiohttp.ClientError, OSError):
        return None
    if status != 200:
        return None
    lags = samples(page, "eventfleet_consumer_lag_events", topic=topic)
    found = {int(lag.labels["partition"]) for lag in lags}
    said = metric(page, "eventfleet_assigned_partitions", topic=topic)
    return found if len(found) == said else None


async def readyz(process: FleetProcess) -> tuple[int, dict[str, object]]:
    try:
        status, body = await process.request("GET", "/readyz", headers={})
    except (aiohttp.ClientError, OSError):
        return 0, {}
    return status, body if isinstance(body, dict) else {}


class Group:
    """The members of one role's group and what each held when last balanced."""

    def __init__(self, topic: str, partitions: int) -> None:
        self.topic = topic
        self.partitions = partitions
        self.members: list[FleetProcess] = []
        self.shares: dict[int, set[int]] = {}  # id(member) → its partitions, when last balanced
        self.seconds: list[float] = []  # each step's time to balance

    async def balanced(self) -> bool:
        """Every partition held once, each member ⌊P/N⌋..⌈P/N⌉, each ready (idle beyond P)."""
        p, n = self.partitions, len(self.members)
        shares = await asyncio.gather(*(held(m, self.topic) for m in self.members))
        if any(s is None for s in shares):
            return False
        counted = sorted(x for s in shares if s is not None for x in s)
        low, high = p // n, -(-p // n)
        if counted != list(range(p)) or not all(low <= len(s or ()) <= high for s in shares):
            return False
        answers = await asyncio.gather(*(readyz(m) for m in self.members))
        if any(status != 200 for status, _ in answers):
            return False
        self.shares = {id(m): set(s or ()) for m, s in zip(self.members, shares, strict=True)}
        return True

    async def settle(self, since: float, what: str) -> None:
        """Wait until balanced, at most BOUND_S after ``since``; then check that only what had to
        move moved."""
        before = dict(self.shares)
        left = since + BOUND_S - time.monotonic()
        try:
            await wait_for(self.balanced, timeout_s=max(left, 0.1), interval_s=0.2,
                           what=f"{what}: {self.partitions} partitions shared by "
                                f"{len(self.members)} members, each ready")  # fmt: skip
        except AssertionError as e:
            raise AssertionError(f"{e}; now: {await self.describe()}") from None
        self.seconds.append(time.monotonic() - since)
        for m in self.members:
            if id(m) in before and len(before) < len(self.members):  # joined: only taken from
                assert self.shares[id(m)] <= before[id(m)], (what, before, self.shares)
            if id(m) in before and len(before) > len(self.members):  # left: only given to
                assert self.shares[id(m)] >= before[id(m)], (what, before, self.shares)

    async def describe(self) -> str:
        """What each member holds and answers now, for a failure message."""
        said = []
        for m in self.members:
            status, body = await readyz(m)
            said.append(f"{sorted(await held(m, self.topic) or ())} readyz {status} {body}")
        return "; ".join(said)

    async def join(self, joining: Sequence[FleetProcess], what: str) -> None:
        for process in joining:
            await process.launch()
        await asyncio.gather(*(
            wait_for(partial(_up, p), timeout_s=START_S, what=f"{what}: up (log {p.log_path})")
            for p in joining
        ))  # fmt: skip
        self.members.extend(joining)
        await self.settle(time.monotonic(), what)

    async def leave(self, leaving: Sequence[FleetProcess], how: signal.Signals, what: str) -> None:
        since = time.monotonic()
        for process in leaving:
            self.members.remove(process)
            if how == signal.SIGKILL:
                process.kill()
            else:
                assert process.process is not None
                process.process.send_signal(how)
        await self.settle(since, what)
        for process in leaving:
            assert process.process is not None
            code = await within(process.process.wait(), timeout_s=30, what="the leaving process")
            assert code == (0 if how == signal.SIGTERM else -signal.SIGKILL), process.log_tail()


async def _up(process: FleetProcess) -> bool:
    if process.process is not None and process.process.returncode is not None:
        raise AssertionError(f"exited with {process.process.returncode}:\n{process.log_tail()}")
    try:
        status, _ = await process.request("GET", "/healthz", headers={})
    except (aiohttp.ClientError, OSError):
        return False
    return status == 200


async def test_four_partitions_shared_as_members_join_and_leave_one_by_one(
    stack: EmbeddedStack, unique_name: str
) -> None:
    """Appenders on 4 partitions: 1 → 2 → 3 (the issue's idle third) → 4 → 5 (one idle), then
    one holding work leaves by SIGTERM (the idle one takes its share), one by SIGKILL, one by
    SIGTERM: 5 → 4 → 3 → 2."""
    group = Group(f"{unique_name}.events", 4)
    joining = [member(stack, unique_name, "appender", 4) for _ in range(5)]
    try:
        for n, process in enumerate(joining, 1):
            await group.join([process], f"appender {n} joined")
        idle = [m for m in group.members if not group.shares[id(m)]]
        assert len(idle) == 1
        await says_idle(group, idle[0])
        busy = [m for m in group.members if group.shares[id(m)]]
        await group.leave([busy[0]], signal.SIGTERM, "an appender left (SIGTERM), 5 → 4")
        assert group.shares[id(idle[0])], "the idle member took the share of the one that left"
        await says_idle(group, None)
        await group.leave([busy[1]], signal.SIGKILL, "an appender was killed, 4 → 3")
        await group.leave([busy[2]], signal.SIGTERM, "an appender left (SIGTERM), 3 → 2")
    finally:
        for process in joining:
            process.kill()
    print(
        f"share: 4 partitions, appenders 1→5→2 one by one: balanced after "
        f"{', '.join(f'{s:.1f}' for s in group.seconds)} s"
    )


async def test_eight_partitions_shared_as_members_join_and_leave_together(
    stack: EmbeddedStack, unique_name: str
) -> None:
    """Snapshotters (a table whose changelog is assigned with its partitions) on 8 partitions:
    4 start together, 2 are killed together, 2 join together, 2 leave together by SIGTERM."""
    group = Group(f"{unique_name}.events.stored", 8)
    first = [member(stack, unique_name, "snapshotter", 8) for _ in range(4)]
    later = [member(stack, unique_name, "snapshotter", 8) for _ in range(2)]
    try:
        await group.join(first, "four snapshotters started together")
        await group.leave(first[:2], signal.SIGKILL, "two snapshotters killed together, 4 → 2")
        await group.join(later, "two snapshotters joined together, 2 → 4")
        await group.leave(first[2:], signal.SIGTERM, "two snapshotters left together, 4 → 2")
    finally:
        for process in first + later:
            process.kill()
    print(
        f"share: 8 partitions, snapshotters 4→2→4→2 together: balanced after "
        f"{', '.join(f'{s:.1f}' for s in group.seconds)} s"
    )


async def says_idle(group: Group, idle: FleetProcess | None) -> None:
    """``idle`` (and no other member) says it is idle, in /readyz and its metric."""
    for process in group.members:
        status, body = await readyz(process)
        assert status == 200, body
        assert body.get("idle") is (process is idle), body
        _, page = await process.get("/metrics")
        assert f'eventfleet_role_idle{{role="appender"}} {1.0 if process is idle else 0.0}' in page
