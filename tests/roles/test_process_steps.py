"""One instance's steps, pure: an event, a deadline, a stuck reaction and its retry."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from snapshot_rules.process import Due, ProcessManager, Reaction, Send, State
from topics.envelope import Event, Metadata, decode, encode, new_event
from workers.examples.domains.order_lifecycle import PAYMENT, order_lifecycle
from workers.ports import ACTIVE, DONE, STUCK, Instance
from workers.roles.process.steps import (
    MAX_HELD,
    command_id,
    deadline_id,
    due_deadline,
    fire,
    on_event,
    retry,
)

PM = order_lifecycle(payment_s=60)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
NOW = T0 + timedelta(seconds=1)


def order_event(kind: str, version: int, order: str = "o1", **data: object) -> Event:
    event = new_event("order", order, kind, data, version=version,
                      metadata=Metadata(correlation_id=f"conv-{order}"))  # fmt: skip
    return replace(event, occurred_at=T0 + timedelta(seconds=version))


PLACED = order_event("OrderPlaced", 1)


def placed() -> Instance:
    step = on_event(PM, "o1", None, PLACED, NOW)
    assert step.instance is not None
    return step.instance


def instance_trigger(instance: Instance) -> str:
    """The id of the event that opened ``instance`` (every test opens it with PLACED)."""
    assert instance.seen == {"order:o1": 1}
    return PLACED.id


def test_a_start_event_opens_an_instance_with_its_deadline_due_after_the_event() -> None:
    step = on_event(PM, "o1", None, order_event("OrderPlaced", 1), NOW)
    instance = step.instance
    assert instance is not None and (step.outcome, step.set) == ("applied", 1)
    assert (instance.revision, instance.status, instance.key) == (1, ACTIVE, "o1")
    assert instance.seen == {"order:o1": 1}
    (deadline,) = instance.deadlines
    event_time = T0 + timedelta(seconds=1)
    assert deadline.due_at == event_time + timedelta(seconds=60)  # from the event, not from now
    assert instance.next_due == deadline.due_at


def test_an_advance_without_an_instance_or_a_copy_seen_changes_nothing() -> None:
    assert on_event(PM, "o1", None, order_event("OrderPaid", 2), NOW).outcome == "unmatched"
    instance = placed()
    again = on_event(PM, "o1", instance, order_event("OrderPlaced", 1), NOW)
    assert (again.instance, again.outcome) == (None, "skipped")


def test_paid_cancels_the_deadline_and_decides_a_command_with_an_id_from_the_event() -> None:
    paid = order_event("OrderPaid", 2, amount=7)
    step = on_event(PM, "o1", placed(), paid, NOW)
    instance = step.instance
    assert instance is not None and (step.sent, step.cancelled) == (1, 1)
    assert instance.deadlines == () and instance.next_due is None
    (command,) = instance.outbox
    assert command.command_id == command_id("order_lifecycle", paid.id, 0)
    assert (command.aggregate_type, command.type, command.causation_id) == (
        "shipment", "ShipmentRequested", paid.id)  # fmt: skip
    assert command.correlation_id == "conv-o1" and instance.unsent_since == NOW
    assert on_event(PM, "o1", instance, paid, NOW).outcome == "skipped"  # a redelivery


def test_a_due_deadline_fires_once_with_a_command_id_from_the_deadline() -> None:
    instance = placed()
    assert due_deadline(instance, NOW) is None
    later = T0 + timedelta(seconds=62)
    deadline = due_deadline(instance, later)
    assert deadline is not None and deadline.name == PAYMENT
    assert deadline.id == deadline_id("order_lifecycle", "o1", PAYMENT, instance_trigger(instance))
    step = fire(PM, instance, deadline, later)
    fired = step.instance
    assert fired is not None and step.outcome == "fired" and fired.deadlines == ()
    (cancel,) = fired.outbox
    assert cancel.command_id == command_id("order_lifecycle", f"dl:{deadline.id}", 0)
    assert (cancel.type, cancel.causation_id) == ("OrderCancelled", deadline.id)
    assert cancel.correlation_id == "conv-o1"  # the conversation of the event that set it
    assert fired.fired[0].fired_at == later and due_deadline(fired, later) is None


def test_an_end_event_ends_the_instance_and_its_deadlines() -> None:
    step = on_event(PM, "o1", placed(), order_event("OrderCancelled", 2, reason="r"), NOW)
    assert step.instance is not None and step.instance.status == DONE
    assert step.instance.deadlines == () and step.cancelled == 1
    after = on_event(PM, "o1", step.instance, order_event("OrderPaid", 3), NOW)
    assert after.outcome == "unmatched"


def flaky(fail: list[bool]) -> ProcessManager:
    def react(state: State | None, event: Event) -> Reaction:
        if fail[0]:
            raise RuntimeError("boom")
        n = (state or {}).get("n", 0) + 1
        return Reaction({"n": n}, send=[Send("order", event.aggregate_id, "OrderCancelled",
                                             {"reason": f"n{n}"})])  # fmt: skip

    def noted(state: State, due: Due) -> Reaction:
        return Reaction(state)

    return ProcessManager(
        name="flaky", starts_on={"order": ["OrderPlaced"]}, advances_on={"order": ["OrderPaid"]},
        key=lambda e: e.aggregate_id, react=react, on_deadline=noted,
        sends={"order": ["OrderCancelled"]},
    )  # fmt: skip


def test_a_reaction_that_raises_sticks_holds_what_follows_and_a_retry_runs_both() -> None:
    fail = [False]
    pm = flaky(fail)
    first = on_event(pm, "o1", None, order_event("OrderPlaced", 1), NOW).instance
    assert first is not None
    fail[0] = True
    paid = order_event("OrderPaid", 2)
    stuck = on_event(pm, "o1", first, paid, NOW)
    assert stuck.outcome == "stuck" and stuck.instance is not None
    instance = stuck.instance
    assert instance.status == STUCK and instance.stuck is not None
    assert (instance.stuck.reason, instance.stuck.detail) == (
        "reaction_failed",
        "RuntimeError: boom",
    )
    assert instance.next_due is None and instance.outbox == first.outbox
    later = order_event("OrderPaid", 3)
    held = on_event(pm, "o1", instance, later, NOW).instance
    assert held is not None and [decode(e).id for e in held.held] == [later.id]
    assert on_event(pm, "o1", held, later, NOW).outcome == "skipped"  # held already
    assert on_event(pm, "o1", held, paid, NOW).outcome == "skipped"  # its trigger, redelivered
    again = retry(pm, held, NOW)  # still failing: stuck again, holding the rest
    assert again.instance is not None and again.instance.stuck is not None
    assert again.instance.stuck.attempts == 2 and len(again.instance.held) == 1
    assert again.instance.revision == held.revision + 1
    fail[0] = False
    done = retry(pm, again.instance, NOW)
    assert done.instance is not None and done.instance.status == ACTIVE
    assert done.instance.state == {"n": 3} and done.instance.held == ()
    assert done.instance.seen == {"order:o1": 3} and done.sent == 2
    assert [c.command_id for c in done.instance.outbox][1:] == [
        command_id("flaky", paid.id, 0), command_id("flaky", later.id, 0)]  # fmt: skip


def test_an_invalid_reaction_sticks_with_its_reason() -> None:
    def react(state: State | None, event: Event) -> Reaction:
        return Reaction({}, send=[Send("order", "o1", "OrderShipped", {"carrier": "x"})])

    pm = ProcessManager(name="bad", starts_on={"order": ["OrderPlaced"]},
                        key=lambda e: e.aggregate_id, react=react)  # fmt: skip
    step = on_event(pm, "o1", None, order_event("OrderPlaced", 1), NOW)
    assert step.instance is not None and step.instance.stuck is not None
    assert step.instance.stuck.reason == "reaction_invalid"
    assert "may not send order.OrderShipped" in step.instance.stuck.detail


def test_a_stuck_instance_holds_at_most_max_held_events() -> None:
    fail = [True]
    pm = flaky(fail)
    step = on_event(pm, "o1", None, order_event("OrderPlaced", 1), NOW)
    assert step.instance is not None and step.instance.status == STUCK
    held = tuple(encode(order_event("OrderPaid", v)) for v in range(2, 2 + MAX_HELD))
    full = replace(step.instance, held=held)
    assert on_event(pm, "o1", full, order_event("OrderPaid", 5000), NOW).outcome == "dropped"
    assert (
        on_event(
            pm, "o1", replace(full, held=held[1:]), order_event("OrderPaid", 5000), NOW
        ).outcome
        == "held"
    )


def test_a_command_refusal_is_retried_by_sending_the_outbox_again() -> None:
    instance = replace(placed(), status=STUCK)
    step = retry(PM, instance, NOW)
    assert step.outcome == "retried" and step.instance is not None
    assert step.instance.status == ACTIVE and step.instance.revision == instance.revision + 1
