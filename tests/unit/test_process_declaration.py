"""Declaring a process manager: pure, and every mistake named at start with its fix."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from snapshot_rules.process import (
    Due,
    Processes,
    ProcessManager,
    Reaction,
    Send,
    SetDeadline,
    State,
    check_reaction,
)
from topics.envelope import Event, new_event
from topics.errors import NotFound
from workers.examples.domains import default_domains


def keep(state: State | None, event: Event) -> Reaction:
    return Reaction(dict(state or {}))


def noted(state: State, due: Due) -> Reaction:
    return Reaction(state)


def manager(**overrides: Any) -> ProcessManager:
    given: dict[str, Any] = {
        "name": "lifecycle",
        "starts_on": {"order": ["OrderPlaced"]},
        "advances_on": {"order": ["OrderPaid"]},
        "ends_on": {"order": ["OrderDelivered"]},
        "key": lambda e: e.aggregate_id,
        "react": keep,
        "sends": {"order": ["OrderCancelled"]},
    }
    return ProcessManager(**{**given, **overrides})


def placed(order: str = "o1") -> Event:
    return new_event("order", order, "OrderPlaced", {"items": []}, version=1)


def test_each_event_type_has_one_phase_and_the_principal_is_its_own() -> None:
    pm = manager(roles=("fulfilment",))
    assert pm.phase(placed()) == "start"
    assert pm.phase(new_event("order", "o1", "OrderPaid", {}, version=2)) == "advance"
    assert pm.phase(new_event("order", "o1", "OrderDelivered", {}, version=3)) == "end"
    assert pm.phase(new_event("order", "o1", "OrderShipped", {}, version=3)) is None
    assert pm.phase(new_event("cart", "o1", "OrderPlaced", {}, version=1)) is None
    assert (pm.actor().principal, pm.actor().roles) == ("pm:lifecycle", ("fulfilment",))
    assert pm.key_of(placed("o-7")) == "o-7"


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"name": "Order Lifecycle"}, "must match"),
        ({"name": ""}, "must match"),
        ({"starts_on": {}}, "no starts_on event type"),
        ({"starts_on": {"order": "OrderPlaced"}}, "is a single string; write a list"),
        ({"starts_on": ["OrderPlaced"]}, "must map aggregate types"),
        ({"ends_on": {"order": ["OrderPlaced"]}}, "in both starts_on and ends_on"),
        ({"react": "not a function"}, "react must be a function"),
        ({"key": None}, "key must be a function"),
        ({"on_deadline": 3}, "on_deadline must be a function"),
        ({"sends": {"order": "OrderCancelled"}}, "single string"),
        ({"roles": "fulfilment"}, "roles must be a tuple"),
    ],
)
def test_a_malformed_declaration_fails_naming_the_fix(
    overrides: dict[str, Any], named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        manager(**overrides)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"starts_on": {"ordr": ["OrderPlaced"]}}, "'ordr' \\(did you mean 'order'\\?\\)"),
        ({"advances_on": {"order": ["OrderPayed"]}}, "order.OrderPayed \\(did you mean"),
        ({"sends": {"order": ["OrderCanceled"]}}, "sends names order.OrderCanceled"),
        ({"sends": {"warehouse": ["Picked"]}}, "which no enabled domain is"),
    ],
)
def test_a_type_no_enabled_domain_declares_is_named_at_start(
    overrides: dict[str, Any], named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        Processes([manager(**overrides)]).check(default_domains())


def test_processes_are_unique_by_name_and_found_by_trigger() -> None:
    pm = manager()
    processes = Processes([pm])
    processes.check(default_domains())
    assert processes.names() == ["lifecycle"] and "lifecycle" in processes
    assert processes.interested(placed()) == [pm]
    assert processes.interested(new_event("order", "o", "OrderShipped", {}, version=3)) == []
    with pytest.raises(ValueError, match="declared twice"):
        Processes([pm, manager()])
    with pytest.raises(NotFound, match="did you mean 'lifecycle'"):
        processes.get("lifecycel")


@pytest.mark.parametrize(
    ("key", "named"),
    [
        (lambda e: 42, "returned 42"),
        (lambda e: "", "returned ''"),
        (lambda e: "a/b", "must be a string matching"),
        (lambda e: e.data["missing"], "raised KeyError"),
    ],
)
def test_a_key_that_cannot_be_an_instance_key_is_named(key: Any, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        manager(key=key).key_of(placed())


def test_a_reaction_takes_lists_as_tuples() -> None:
    reaction = Reaction({}, send=[Send("order", "o1", "OrderCancelled", {"reason": "r"})],
                        set_deadlines=[SetDeadline("payment", 5)], cancel_deadlines=["x"])  # fmt: skip
    assert isinstance(reaction.send, tuple) and isinstance(reaction.set_deadlines, tuple)
    assert check_reaction(manager(on_deadline=noted), reaction) is reaction
    with pytest.raises(ValueError, match="sets deadline 'payment' but declares no on_deadline"):
        check_reaction(manager(), reaction)


@pytest.mark.parametrize(
    ("reaction", "named"),
    [
        ({"state": {}}, "must return Reaction"),
        (Reaction({"n": float("nan")}), "state.n"),
        (Reaction({"$where": 1}), "state"),
        (
            Reaction({}, send=[Send("order", "o1", "OrderShipped")]),
            "may not send order.OrderShipped",
        ),
        (Reaction({}, send=[Send("order", "a b", "OrderCancelled")]), "aggregate id must match"),
        (Reaction({}, send=[("order", "o1")]), "not a Send"),  # type: ignore[list-item]
        (
            Reaction({}, send=[Send("order", "o", "OrderCancelled", {"r": 2**64})]),
            "OrderCancelled.data",
        ),
        (Reaction({}, set_deadlines=[SetDeadline("pay ment", 1)]), "deadline name 'pay ment'"),
        (Reaction({}, set_deadlines=[SetDeadline("pay", -1)]), "after_s=-1"),
        (Reaction({}, set_deadlines=[SetDeadline("pay", float("inf"))]), "after_s=inf"),
        (Reaction({}, set_deadlines=[SetDeadline("pay", True)]), "must be a number"),
        (Reaction({}, cancel_deadlines=[""]), "no deadline name"),
        (
            Reaction({}, send=[Send("order", f"o{i}", "OrderCancelled") for i in range(101)]),
            "at most 100",
        ),
    ],
)
def test_a_reaction_the_runtime_cannot_carry_out_is_named(reaction: Any, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        check_reaction(manager(on_deadline=noted), reaction)


def test_due_carries_what_on_deadline_needs() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    due = Due("payment", "d1", at, {"n": 1})
    assert (due.name, due.id, due.due_at, due.data) == ("payment", "d1", at, {"n": 1})
