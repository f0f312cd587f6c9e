"""The pm role's logic on the memory adapters, with the command side and appender the runtime
wires: effects once across redeliveries and crashes, deadlines fired once, stuck and retried."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry

from snapshot_rules.process import Processes, ProcessManager, Reaction, Send, State
from tests.clock import WallClock
from tests.orders import ITEMS
from tests.roles.pipeline import DLQ, STORED, Pipeline, pipeline
from topics.envelope import Actor, Event, command_scope, decode, derived_event_id
from topics.errors import NotFound
from workers.adapters.memory import MemoryActionLog, MemoryProcessInstances, MemoryWriteBudgets
from workers.examples.domains import default_domains
from workers.examples.domains.order_lifecycle import order_lifecycle
from workers.metrics import create_metrics, create_process_metrics
from workers.ports import ACTIVE, DONE, RETRYING, STUCK, Budget, BudgetDraw, Instance, Record
from workers.roles.command.budget import BudgetPolicy, WriteBudget
from workers.roles.command.requests import CommandRequest
from workers.roles.deadletter import DeadLetters
from workers.roles.outcomes import Outcome
from workers.roles.process.desk import NotStuck, ProcessDesk
from workers.roles.process.polls import Polls
from workers.roles.process.runner import CommandsPending, ProcessRunner, RunnerConfig
from workers.roles.process.steps import command_id

PAYMENT_S = 60.0


@dataclass
class Fleet:
    """A pipeline, the runner over it, and how far the runner has read events.stored."""

    line: Pipeline
    runner: ProcessRunner
    polls: Polls
    instances: MemoryProcessInstances
    desk: ProcessDesk
    now: WallClock
    registry: CollectorRegistry
    read: int = 0

    async def stored(self) -> list[tuple[Event, Record]]:
        """Store what was asked; the events.stored records the runner has not read yet."""
        await self.line.flush()
        records = self.line.producer.records(STORED)[self.read :]
        self.read += len(records)
        return [(decode(r.value), r) for r in records]

    async def settle(self) -> None:
        """Store, and let the runner react, until nothing new is stored."""
        while pairs := await self.stored():
            await self.runner.handle(pairs)
        await self.line.flush()

    async def history(self, aggregate: str) -> list[Event]:
        aggregate_type, aggregate_id = aggregate.split(":")
        return await self.line.store.select((aggregate_type, aggregate_id))

    async def instance(self, key: str, process: str = "order_lifecycle") -> Instance:
        return (await self.instances.load(process, [key]))[key]


Submit = Callable[[CommandRequest], Awaitable[Outcome]]


async def fleet(
    *managers: ProcessManager,
    submit: Callable[[Submit], Submit] | None = None,
) -> Fleet:
    line = await pipeline(default_domains())
    instances, now = MemoryProcessInstances(), WallClock()
    processes = Processes(managers or [order_lifecycle(payment_s=PAYMENT_S)])
    processes.check(line.domains)
    handle: Submit = line.service.handle
    registry = CollectorRegistry()
    runner = runner_of(
        line, processes, instances, now, submit(handle) if submit else handle, registry
    )
    desk = ProcessDesk(processes=processes, instances=instances, log=MemoryActionLog())
    return Fleet(line, runner, Polls(runner, line.marker), instances, desk, now, registry)


def runner_of(
    line: Pipeline, processes: Processes, instances: MemoryProcessInstances, now: WallClock,
    submit: Submit, registry: CollectorRegistry | None = None,
) -> ProcessRunner:  # fmt: skip
    """One process of the pm role over ``line``'s command side and ``instances`` (its metrics
    in ``registry``)."""
    return ProcessRunner(
        processes=processes, instances=instances, events=line.store, submit=submit,
        dead_letters=DeadLetters(line.producer, topic=DLQ, role="pm", metrics=line.metrics),
        metrics=create_process_metrics(registry or CollectorRegistry()),
        config=RunnerConfig(poll_s=0.01, unsent_after_s=5.0), clock=now,
    )  # fmt: skip


async def test_placed_then_paid_requests_the_shipment_once_under_the_managers_principal() -> None:
    f = await fleet()
    await f.line.ask("order:o1", "OrderPlaced", ITEMS)
    await f.settle()
    placed = await f.instance("o1")
    assert placed.status == ACTIVE and [d.name for d in placed.deadlines] == ["payment"]
    await f.line.ask("order:o1", "OrderPaid", {"amount": 2})
    await f.settle()
    (requested,) = await f.history("shipment:o1")
    paid = (await f.history("order:o1"))[1]
    pm = Actor("pm:order_lifecycle", ("fulfilment",))
    cid = command_id("order_lifecycle", paid.id, 0)
    assert requested.metadata.actor == pm and requested.metadata.command_id == cid
    assert requested.id == derived_event_id("shipment", "o1", command_scope(cid, pm))
    assert requested.metadata.causation_id == paid.id
    paid_instance = await f.instance("o1")
    assert paid_instance.deadlines == () and paid_instance.outbox == ()
    f.read = 0  # every stored record again: a redelivery after a rebalance
    await f.settle()
    assert len(await f.history("shipment:o1")) == 1
    assert (await f.instance("o1")).revision == paid_instance.revision


async def test_a_crash_between_the_write_and_the_send_sends_the_same_command_once() -> None:
    crash = [True]

    def crashing(handle: Submit) -> Submit:
        async def submit(request: CommandRequest) -> Outcome:
            if crash[0]:
                raise ConnectionResetError("the process died before the command went out")
            return await handle(request)

        return submit

    f = await fleet(submit=crashing)
    await f.line.ask("order:o1", "OrderPlaced", ITEMS)
    await f.line.ask("order:o1", "OrderPaid", {"amount": 2})
    pairs = await f.stored()
    with pytest.raises(ConnectionResetError):
        await f.runner.handle(pairs)
    decided = await f.instance("o1")
    assert len(decided.outbox) == 1 and decided.unsent_since is not None  # written, not sent
    crash[0] = False
    await f.runner.handle(pairs)  # the same records, redelivered: skipped, the outbox sent
    await f.runner.handle(pairs)
    await f.line.flush()
    assert len(await f.history("shipment:o1")) == 1
    assert (await f.instance("o1")).outbox == ()


async def test_an_outbox_left_unsent_is_sent_by_the_poll() -> None:
    crash = [True]

    def crashing(handle: Submit) -> Submit:
        async def submit(request: CommandRequest) -> Outcome:
            if crash[0]:
                raise ConnectionResetError("the process died before the command went out")
            return await handle(request)

        return submit

    f = await fleet(submit=crashing)
    await f.line.ask("order:o1", "OrderPlaced", ITEMS)
    await f.line.ask("order:o1", "OrderPaid", {"amount": 2})
    with pytest.raises(ConnectionResetError):
        await f.runner.handle(await f.stored())
    crash[0] = False
    assert await f.polls.poll() == 0  # not old enough yet: its writer may still send it
    f.now.after(6)
    await f.polls.poll()
    await f.line.flush()
    assert [e.type for e in await f.history("shipment:o1")] == ["ShipmentRequested"]


async def test_a_due_deadline_fires_once_and_a_cancelled_one_never() -> None:
    f = await fleet()
    await f.line.ask("order:unpaid", "OrderPlaced", ITEMS)
    await f.line.ask("order:paid", "OrderPlaced", ITEMS)
    await f.line.ask("order:paid", "OrderPaid", {"amount": 2})
    await f.settle()
    assert (await f.instance("paid")).deadlines == ()
    f.now.after(PAYMENT_S - 5)
    await f.polls.poll()
    assert (await f.instance("unpaid")).deadlines != ()  # not due yet
    f.now.after(PAYMENT_S + 5)
    other = runner_of(f.line, f.runner.processes, f.instances, f.now, f.line.service.handle)
    for _ in range(3):  # two processes of the role poll at once, again and again
        await asyncio.gather(f.polls.poll(), Polls(other).poll())
    await f.settle()
    unpaid = [e.type for e in await f.history("order:unpaid")]
    assert unpaid == ["OrderPlaced", "OrderCancelled"]
    assert [e.type for e in await f.history("order:paid")] == ["OrderPlaced", "OrderPaid"]
    ended = await f.instance("unpaid")
    assert ended.status == DONE and ended.fired[0].name == "payment"
    assert ended.fired[0].fired_at - ended.fired[0].due_at < timedelta(seconds=10)


async def test_a_deadline_waits_for_a_payment_stored_but_not_yet_reacted_to() -> None:
    f = await fleet()
    await f.line.ask("order:o1", "OrderPlaced", ITEMS)
    await f.settle()
    await f.line.ask("order:o1", "OrderPaid", {"amount": 2})
    paid = await f.stored()  # stored while the role was away: not handed to it yet
    f.now.after(PAYMENT_S * 2)
    await f.polls.poll()
    assert (await f.instance("o1")).deadlines != ()  # deferred, not fired
    await f.runner.handle(paid)
    await f.polls.poll()
    await f.settle()
    assert [e.type for e in await f.history("order:o1")] == ["OrderPlaced", "OrderPaid"]


async def test_a_deadline_waits_for_a_payment_the_door_accepted_and_the_store_does_not_hold_yet() -> (
    None
):
    f = await fleet()
    await f.line.ask("order:o1", "OrderPlaced", ITEMS)
    await f.settle()
    assert (await f.line.ask("order:o1", "OrderPaid", {"amount": 2})).status == 202
    f.now.after(PAYMENT_S + 1)  # due while the payment is accepted but not stored
    for _ in range(3):
        await f.polls.poll()
    assert [d.name for d in (await f.instance("o1")).deadlines] == ["payment"]  # deferred
    deferred = f.registry.get_sample_value(
        "eventfleet_process_deadlines_total", {"process": "order_lifecycle", "outcome": "deferred"}
    )
    assert deferred == 3
    await f.settle()  # stored, and reacted to: the payment cancels the deadline
    await f.polls.poll()
    await f.settle()
    assert [e.type for e in await f.history("order:o1")] == ["OrderPlaced", "OrderPaid"]
    assert (await f.instance("o1")).deadlines == ()


async def test_a_deadline_long_past_due_when_the_role_is_back_still_waits_for_an_accepted_payment() -> (
    None
):
    """The wait for what the door accepted counts from when the role finds the deadline due, not
    from its due time: back from an outage longer than the wait, it does not cancel an order
    whose payment the door took and the store does not hold yet."""
    f = await fleet()
    await f.line.ask("order:o1", "OrderPlaced", ITEMS)
    await f.settle()
    assert (await f.line.ask("order:o1", "OrderPaid", {"amount": 2})).status == 202
    f.now.after(PAYMENT_S + 3 * f.runner.config.accepted_wait_s)  # the role was down till now
    await f.polls.poll()
    assert [d.name for d in (await f.instance("o1")).deadlines] == ["payment"]  # deferred
    await f.settle()  # stored, and reacted to: the payment cancels the deadline
    await f.polls.poll()
    await f.settle()
    assert [e.type for e in await f.history("order:o1")] == ["OrderPlaced", "OrderPaid"]
    assert [e.type for e in await f.history("shipment:o1")] == ["ShipmentRequested"]


async def test_a_deadline_the_marker_cannot_answer_for_waits_and_a_mark_never_stored_is_bounded() -> (
    None
):
    f = await fleet()
    await f.line.ask("order:o1", "OrderPlaced", ITEMS)
    await f.settle()
    f.now.after(PAYMENT_S + 1)
    f.line.marker.faults.down()  # Redis does not answer: whether the door took more is unknown
    await f.polls.poll()
    assert (await f.instance("o1")).deadlines != ()
    f.line.marker.faults.up()
    stale = f"OrderPaid|{uuid.uuid4()}|{(await f.history('order:o1'))[-1].id}|1"
    f.line.marker.plant("order:o1", stale)  # a mark whose event Kafka never took
    await f.polls.poll()
    assert (await f.instance("o1")).deadlines != ()  # within the wait: deferred
    f.now.after(PAYMENT_S + f.runner.config.accepted_wait_s + 1)
    await f.polls.poll()  # past it: fired on the stored events alone
    await f.settle()
    assert [e.type for e in await f.history("order:o1")] == ["OrderPlaced", "OrderCancelled"]
    assert (await f.instance("o1")).status == DONE


def deliver_when_paid() -> ProcessManager:
    """Sends OrderDelivered once paid: refused until the order is shipped."""

    def react(state: State | None, event: Event) -> Reaction:
        if event.type == "OrderPaid":
            return Reaction(
                {"paid": True}, send=[Send("order", event.aggregate_id, "OrderDelivered")]
            )
        return Reaction({"paid": False})

    return ProcessManager(
        name="deliverer", starts_on={"order": ["OrderPlaced"]},
        advances_on={"order": ["OrderPaid"]}, key=lambda e: e.aggregate_id, react=react,
        sends={"order": ["OrderDelivered"]},
    )  # fmt: skip


async def test_a_refused_command_sticks_the_instance_and_a_retry_sends_it_again() -> None:
    f = await fleet(deliver_when_paid())
    await f.line.ask("order:o1", "OrderPlaced", ITEMS)
    await f.line.ask("order:o1", "OrderPaid", {"amount": 2})
    await f.settle()
    stuck = await f.instance("o1", "deliverer")
    assert stuck.status == STUCK and stuck.stuck is not None
    assert stuck.stuck.reason == "command_refused" and "transition_rejected" in stuck.stuck.detail
    assert [c.type for c in stuck.outbox] == ["OrderDelivered"]
    assert f.line.dead_letters() == ["process_stuck"]
    await f.line.ask("order:o1", "OrderShipped", {"carrier": "dhl"})  # the world, fixed
    await f.settle()
    asked = await f.desk.retry("deliverer", "o1", operator="ada", via="test")
    assert asked.status == RETRYING
    with pytest.raises(NotStuck, match="retry is under way"):
        await f.desk.retry("deliverer", "o1", operator="bob", via="test")
    await f.polls.poll()
    await f.settle()
    assert [e.type for e in await f.history("order:o1")][-1] == "OrderDelivered"
    assert (await f.instance("o1", "deliverer")).status == ACTIVE


async def test_a_wait_of_zero_fires_on_the_stored_events_without_reading_the_marks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    f = await fleet()
    f.runner.config = replace(f.runner.config, accepted_wait_s=0)
    await f.line.ask("order:o1", "OrderPlaced", ITEMS)
    await f.settle()
    await f.line.ask("order:o1", "OrderPaid", {"amount": 2})  # accepted, not stored
    f.now.after(PAYMENT_S + 1)
    await f.polls.poll()
    assert (await f.instance("o1")).fired[0].name == "payment"
    assert f.line.marker.faults.calls["peek"] == 0
    assert "fires" not in caplog.text  # nothing waited: no warning that it stopped waiting


def over_budget(refusing: set[str]) -> Callable[[Submit], Submit]:
    """The door, but a command to an aggregate in ``refusing`` is refused as the write budget
    refuses a principal over it (``WriteBudget.refuse``: 429 too_many_writes, Retry-After)."""
    draw = BudgetDraw("pm:order_lifecycle", Budget(1, 1))
    budget = WriteBudget(
        policy=BudgetPolicy(None, {}, {}), budgets=MemoryWriteBudgets(), metrics=create_metrics()
    )

    def wrap(handle: Submit) -> Submit:
        async def submit(request: CommandRequest) -> Outcome:
            if request.aggregate_id in refusing:
                return budget.refuse(draw, 1000)
            return await handle(request)

        return submit

    return wrap


async def test_a_command_over_the_managers_write_budget_is_sent_again_and_sticks_nothing() -> None:
    refusing = {"o2"}
    f = await fleet(submit=over_budget(refusing))
    for order in ("o1", "o2"):
        await f.line.ask(f"order:{order}", "OrderPlaced", ITEMS)
        await f.line.ask(f"order:{order}", "OrderPaid", {"amount": 2})
    pairs = await f.stored()
    with pytest.raises(CommandsPending, match="over its write budget"):
        await f.runner.handle(pairs)  # the agent's retries pace what comes next
    o1, o2 = await f.instance("o1"), await f.instance("o2")
    assert (o1.status, o2.status) == (ACTIVE, ACTIVE)  # neither stuck
    assert (len(o1.outbox), [c.type for c in o2.outbox]) == (0, ["ShipmentRequested"])
    assert f.line.dead_letters() == []
    refusing.clear()  # the budget holds a write again
    await f.runner.handle(pairs)  # redelivered: the outbox kept is sent
    await f.line.flush()
    assert [len(await f.history(f"shipment:{o}")) for o in ("o1", "o2")] == [1, 1]
    assert (await f.instance("o2")).outbox == ()


def fragile(fail: list[bool]) -> ProcessManager:
    def react(state: State | None, event: Event) -> Reaction:
        if fail[0] and event.type == "OrderPaid":
            raise RuntimeError("a bug in the reaction")
        seen = [*(state or {}).get("seen", []), event.type]
        return Reaction({"seen": seen})

    return ProcessManager(
        name="fragile", starts_on={"order": ["OrderPlaced"]},
        advances_on={"order": ["OrderPaid", "OrderShipped"]}, key=lambda e: e.aggregate_id,
        react=react,
    )  # fmt: skip


async def test_a_reaction_that_raises_holds_what_follows_until_a_retry() -> None:
    fail = [True]
    f = await fleet(fragile(fail))
    for kind, data in (("OrderPlaced", ITEMS), ("OrderPaid", {"amount": 2}),
                       ("OrderShipped", {"carrier": "dhl"})):  # fmt: skip
        await f.line.ask("order:o1", kind, data)
    await f.settle()
    stuck = await f.instance("o1", "fragile")
    assert stuck.status == STUCK and stuck.stuck is not None
    assert stuck.stuck.detail == "RuntimeError: a bug in the reaction" and len(stuck.held) == 1
    with pytest.raises(NotFound, match="no instance 'nobody-else'"):
        await f.desk.retry("fragile", "nobody-else", operator="ada", via="test")
    fail[0] = False  # the fix deployed
    await f.desk.retry("fragile", "o1", operator="ada", via="test")
    await f.polls.poll()
    fixed = await f.instance("o1", "fragile")
    assert fixed.status == ACTIVE and fixed.state == {
        "seen": ["OrderPlaced", "OrderPaid", "OrderShipped"]}  # fmt: skip
