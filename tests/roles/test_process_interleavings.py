"""A paid order shipped once, an unpaid one cancelled, never both: the pm role under interleavings.

Hypothesis draws a plan over two orders: orders placed and paid through the command door, the
stored events handed to the role in batches of any size (by one process of it, or by two at once
over the same instances), redelivered after a rebalance, the clock moved past deadlines, polls
(by one process, or by both at once), and faults planted in between: the instance store failing
one call, Kafka not taking one command, the marker down, a command's send cut off. Once every
stored event is handed over and the clock is past every deadline, each placed order is either
shipped once (a ``ShipmentRequested`` on its shipment) or cancelled (``OrderCancelled``), never
both nor neither; a payment the door took before the deadline fired is not cancelled (unless the
deadline waited its most for it); and no instance holds work: no outbox, no deadline, nothing
stuck.

On the memory adapters, with the command side and appender the runtime wires
(``tests.roles.pipeline``); tests/e2e/test_process_faults.py runs the fleet.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from unittest.mock import patch

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from snapshot_rules.process import Processes
from tests.clock import WallClock
from tests.orders import ITEMS
from tests.roles.pipeline import DLQ, EVENTS, SETTINGS, STORED, Pipeline, pipeline
from topics.envelope import Event, decode
from topics.errors import Unavailable
from workers.adapters.memory import MemoryProcessInstances
from workers.examples.domains import default_domains
from workers.examples.domains.order_lifecycle import order_lifecycle
from workers.metrics import create_process_metrics
from workers.ports import ACTIVE, DONE, Instance, Record
from workers.roles.command import async_mode
from workers.roles.command.requests import CommandRequest
from workers.roles.deadletter import DeadLetters
from workers.roles.outcomes import Outcome
from workers.roles.process.polls import Polls
from workers.roles.process.runner import ProcessRunner, RunnerConfig

PAYMENT_S = 60.0
ORDERS = ("o1", "o2")
INSTANCE_CALLS = ("load", "save", "due", "unsent")
NO_WAIT = {"refusal_wait_ms": 0}
SETTLE_ROUNDS = 8
"""Rounds of the final settle (hand over what is stored, poll, store what was sent): an order
needs three (its deadline fires, the cancel is stored, the end is reacted to)."""


class Cut(ConnectionResetError):
    """A planted failure: the command's send was cut off before it reached the door."""


@dataclass
class World:
    """The door and appender (``line``), two processes of the pm role over one instance store,
    and how far the role has read events.stored."""

    line: Pipeline
    instances: MemoryProcessInstances
    runners: tuple[ProcessRunner, ProcessRunner]
    polls: tuple[Polls, Polls]
    clock: WallClock
    cuts: list[str] = field(default_factory=list)  # sends planted to be cut off, in order
    planted: int = 0  # failures planted: the settle gives each a round
    paid_at: dict[str, datetime] = field(default_factory=dict)  # when the door took a payment
    marker_down: int = 0  # steps the marker stays down, this one among them
    read: int = 0

    async def stored(self, n: int) -> list[tuple[Event, Record]]:
        """Store what the door took; the next ``n`` events.stored records the role has not read
        (not marked read: ``handed`` does that once the role has taken them)."""
        await self.line.flush()
        records = self.line.producer.records(STORED)[self.read : self.read + n]
        return [(decode(r.value), r) for r in records]

    async def hand(self, n: int, who: tuple[int, ...]) -> None:
        """The next ``n`` stored records to the processes ``who`` (at once); read past them only
        if every one took them (a failure: the agent hands the batch over again)."""
        pairs = await self.stored(n)
        if not pairs:
            return
        results = await asyncio.gather(
            *(self.runners[i].handle(pairs) for i in who), return_exceptions=True
        )
        _only_planted(results)
        if not any(isinstance(r, BaseException) for r in results):
            self.read += len(pairs)

    async def poll(self, who: tuple[int, ...]) -> None:
        """The processes ``who`` poll (at once)."""
        results = await asyncio.gather(*(self.polls[i].poll() for i in who), return_exceptions=True)
        _only_planted(results)

    async def history(self, aggregate_type: str, aggregate_id: str) -> list[str]:
        return [e.type for e in await self.line.store.select((aggregate_type, aggregate_id))]


def _only_planted(results: Sequence[object]) -> None:
    """A failure the plan planted is the agent's to retry; any other is the product's bug."""
    for result in results:
        if isinstance(result, BaseException) and not _planted(result):
            raise result


def _planted(error: BaseException) -> bool:
    return isinstance(error, Cut | Unavailable)


async def world() -> World:
    # A refusal the marker cannot prove is answered at once (503), not after waiting for an
    # appender that only a step of the plan moves.
    line = await pipeline(default_domains(), settings=SETTINGS.model_copy(update=NO_WAIT))
    instances, clock = MemoryProcessInstances(), WallClock()
    processes = Processes([order_lifecycle(payment_s=PAYMENT_S)])
    processes.check(line.domains)
    cuts: list[str] = []

    async def submit(request: CommandRequest) -> Outcome:
        if cuts:
            cuts.pop(0)
            raise Cut(f"the send of {request.command_id} was cut off")
        return await line.service.handle(request)

    def runner() -> ProcessRunner:
        return ProcessRunner(
            processes=processes,
            instances=instances,
            events=line.store,
            submit=submit,
            dead_letters=DeadLetters(line.producer, topic=DLQ, role="pm", metrics=line.metrics),
            metrics=create_process_metrics(CollectorRegistry()),
            config=RunnerConfig(poll_s=0.01, unsent_after_s=5.0, accepted_wait_s=30.0),
            clock=clock,
        )

    runners = (runner(), runner())
    polls = (Polls(runners[0], line.marker), Polls(runners[1], line.marker))
    return World(line, instances, runners, polls, clock, cuts)


Step = tuple[str, int]
TICKS = (6, 31, *[int(PAYMENT_S) + 1] * 3)
KINDS = [
    *["place", "pay", "hand", "tick"] * 3,  # the plan's moves, more often than its faults
    *["poll"] * 2,
    *["hand_both", "redeliver", "instances_fail", "kafka_fails", "cut_send", "marker_down"],
]
steps = st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 11)), min_size=4, max_size=30)
"""Each step a kind and a number it reads as it needs (an order, a batch's size, seconds...)."""


@settings(max_examples=600, deadline=None)
@given(steps, st.integers(0, 2**32))
def test_each_placed_order_is_shipped_once_or_cancelled_never_both(
    plan: list[Step], seed: int
) -> None:
    asyncio.run(_run(plan, seed))


async def _run(plan: list[Step], seed: int) -> None:
    pick = random.Random(seed)
    w = await world()
    # The door stamps events with the role's clock: a deadline counts from the plan's time.
    with patch.object(async_mode, "utc_now", w.clock), _noted(plan, seed):
        for kind, n in plan:
            # No two steps at one moment, as the instance store keeps it (to the millisecond).
            w.clock.advance(0.001)
            await _STEPS[kind](w, n, pick)
            w.marker_down -= 1
            if w.marker_down == 0:
                w.line.marker.faults.up()
        await _settle(w)
        await _check(w)


@contextlib.contextmanager
def _noted(plan: list[Step], seed: int) -> Iterator[None]:
    """A failure names its plan (Hypothesis's report leaves an async test's arguments out)."""
    try:
        yield
    except BaseException as e:
        e.add_note(f"plan={plan!r}, seed={seed}")
        raise


async def _place(w: World, n: int, _: random.Random) -> None:
    await w.line.ask(f"order:{ORDERS[n % len(ORDERS)]}", "OrderPlaced", ITEMS)


async def _pay(w: World, n: int, _: random.Random) -> None:
    order = ORDERS[n % len(ORDERS)]
    answer = await w.line.ask(f"order:{order}", "OrderPaid", {"amount": 2})
    if answer.status in (200, 201, 202):
        w.paid_at.setdefault(order, w.clock.at)


async def _hand(w: World, n: int, pick: random.Random) -> None:
    await w.hand(n % 5 + 1, (pick.randrange(2),))


async def _hand_both(w: World, n: int, _: random.Random) -> None:
    await w.hand(n % 5 + 1, (0, 1))


async def _redeliver(w: World, n: int, _: random.Random) -> None:
    w.read = max(0, w.read - n)  # a rebalance: the role reads again from an earlier commit


async def _tick(w: World, n: int, pick: random.Random) -> None:
    w.clock.advance(TICKS[n % len(TICKS)])
    await w.poll((pick.randrange(2),))  # time passed: the poll loop ran


async def _poll(w: World, n: int, _: random.Random) -> None:
    await w.poll(((0,), (1,), (0, 1))[n % 3])  # one process, the other, or both at once


async def _instances_fail(w: World, n: int, _: random.Random) -> None:
    w.instances.faults.fail_next(on=INSTANCE_CALLS[n % len(INSTANCE_CALLS)])
    w.planted += 1


async def _kafka_fails(w: World, _: int, __: random.Random) -> None:
    w.line.producer.faults.fail_next(on=EVENTS)  # the door's next command is not taken
    w.planted += 1


async def _cut_send(w: World, _: int, __: random.Random) -> None:
    w.cuts.append("cut")
    w.planted += 1


async def _marker_down(w: World, n: int, _: random.Random) -> None:
    w.line.marker.faults.down()  # for a few steps: the door takes nothing, deadlines wait
    w.marker_down = n % 4 + 2


_STEPS: dict[str, Callable[[World, int, random.Random], Awaitable[None]]] = {
    "place": _place,
    "pay": _pay,
    "hand": _hand,
    "hand_both": _hand_both,
    "redeliver": _redeliver,
    "tick": _tick,
    "poll": _poll,
    "instances_fail": _instances_fail,
    "kafka_fails": _kafka_fails,
    "cut_send": _cut_send,
    "marker_down": _marker_down,
}


async def _settle(w: World) -> None:
    """The marker back and the clock past every deadline: hand over all that is stored, poll,
    and again, as the role's agent and poll loop would (a failure planted and not met yet is met
    here: each has a round of its own)."""
    w.line.marker.faults.up()
    w.clock.advance(PAYMENT_S * 2 + w.runners[0].config.accepted_wait_s)
    for _ in range(SETTLE_ROUNDS + w.planted):
        await w.hand(len(w.line.producer.records(STORED)) + 1, (0,))
        await w.poll((0,))
        w.clock.advance(w.runners[0].config.unsent_after_s + 1)
    await w.line.flush()


async def _instances(w: World) -> dict[str, Instance]:
    """The instances as stored (a planted failure the settle never met is met here)."""
    for _ in range(w.planted):
        try:
            return await w.instances.load("order_lifecycle", list(ORDERS))
        except Unavailable:
            continue
    return await w.instances.load("order_lifecycle", list(ORDERS))


async def _check(w: World) -> None:
    placed = [o for o in ORDERS if (await w.history("order", o))[:1] == ["OrderPlaced"]]
    found = await _instances(w)
    assert sorted(found) == placed, "an instance for each placed order, none for the others"
    for order in placed:
        events, shipment = await w.history("order", order), await w.history("shipment", order)
        shipped, cancelled = shipment == ["ShipmentRequested"], "OrderCancelled" in events
        where = f"order {order}: {events}, shipment {shipment}"
        assert len(shipment) <= 1 and events.count("OrderCancelled") <= 1, where
        assert shipped != cancelled, f"shipped or cancelled, not both nor neither: {where}"
        assert not shipped or "OrderPaid" in events, where
        instance = found[order]
        if cancelled and "OrderPaid" in events:  # its deadline fired first, or waited its most
            fired, wait_s = instance.fired[0], w.runners[0].config.accepted_wait_s
            late = (fired.fired_at - fired.due_at).total_seconds() >= wait_s
            assert w.paid_at[order] > fired.fired_at or late, (where, w.paid_at, instance)
        assert instance.stuck is None and instance.outbox == (), (where, instance)
        assert instance.deadlines == (), (where, instance)
        assert instance.status == (DONE if cancelled else ACTIVE), (where, instance)
    assert w.line.dead_letters() == []
