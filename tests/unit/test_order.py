"""The order domain: its transition table, reducer effects and data validation."""

from __future__ import annotations

from typing import Any

import pytest

from snapshot_rules.domain import NEW
from snapshot_rules.replay import State, replay
from snapshot_rules.rules import Progress
from topics.envelope import Event, new_event
from topics.errors import InvalidEventData, TransitionRejected, UnknownEventType
from workers.examples.domains import default_domains
from workers.examples.domains.order import ORDER, reduce_order

TYPES = ["OrderPlaced", "OrderPaid", "OrderShipped", "OrderDelivered", "OrderCancelled"]
# The table of the issue: event type -> what may be marked before it (None: a new order).
ALLOWED_AFTER: dict[str, set[str | None]] = {
    "OrderPlaced": {None},
    "OrderPaid": {"OrderPlaced"},
    "OrderShipped": {"OrderPaid"},
    "OrderDelivered": {"OrderShipped"},
    "OrderCancelled": {"OrderPlaced", "OrderPaid"},
}
PAIRS = [(current, requested) for current in [None, *TYPES] for requested in TYPES]


def test_the_domain_declares_exactly_the_order_events() -> None:
    assert sorted(ORDER.events) == sorted(TYPES)
    assert ORDER.name == "order"
    assert ORDER.mode.value == "async"
    assert "order" in default_domains()
    assert default_domains().get("order") is ORDER


@pytest.mark.parametrize(
    ("current", "requested"), [p for p in PAIRS if p[0] in ALLOWED_AFTER[p[1]]]
)
def test_allowed_transitions(current: str | None, requested: str) -> None:
    ORDER.check_transition("o-1", current, requested)


@pytest.mark.parametrize(
    ("current", "requested"), [p for p in PAIRS if p[0] not in ALLOWED_AFTER[p[1]]]
)
def test_forbidden_transitions(current: str | None, requested: str) -> None:
    with pytest.raises(TransitionRejected) as caught:
        ORDER.check_transition("o-1", current, requested)
    rejection = caught.value
    assert rejection.current == current
    expected = sorted(NEW if t is None else t for t in ALLOWED_AFTER[requested])
    assert list(rejection.allowed) == expected
    message = str(rejection)
    assert "o-1" in message and requested in message
    assert (current or "new aggregate") in message
    assert rejection.retriable is False


def test_the_marker_spelling_of_new_is_a_new_order() -> None:
    # The marker stores "none" for an aggregate without events.
    ORDER.check_transition("o-1", NEW, "OrderPlaced")
    with pytest.raises(TransitionRejected):
        ORDER.check_transition("o-1", NEW, "OrderPaid")


def test_transition_to_an_unknown_type_is_an_unknown_event_type() -> None:
    with pytest.raises(UnknownEventType):
        ORDER.check_transition("o-1", "OrderPlaced", "OrderRefunded")


def _event(kind: str, data: dict[str, Any], version: int) -> Event:
    return new_event("order", "o-1", kind, data, version=version)


LIFECYCLE: list[tuple[str, dict[str, Any]]] = [
    (
        "OrderPlaced",
        {"items": [{"sku": "a", "qty": 2, "price": 3.5}, {"sku": "b", "qty": 1, "price": 10}]},
    ),
    ("OrderPaid", {"amount": 17}),
    ("OrderShipped", {"carrier": "dhl"}),
    ("OrderDelivered", {}),
]


def test_a_full_lifecycle_folds_to_a_delivered_order() -> None:
    states: list[State] = []
    state: State | None = None
    for version, (kind, data) in enumerate(LIFECYCLE, start=1):
        state = reduce_order(state, _event(kind, data, version))
        states.append(state)
    assert [s["status"] for s in states] == ["placed", "paid", "shipped", "delivered"]
    final = states[-1]
    assert final["total"] == 17.0
    assert final["paid"] == 17
    assert final["carrier"] == "dhl"
    assert final["items"] == LIFECYCLE[0][1]["items"]
    assert (
        replay(reduce_order, [_event(k, d, v) for v, (k, d) in enumerate(LIFECYCLE, 1)]).state
        == final
    )


@pytest.mark.parametrize(
    ("items", "total"),
    [
        ([{"sku": "a", "qty": 1, "price": 0}], 0),
        ([{"sku": "a", "qty": 3, "price": 7}], 21),
        ([{"sku": "a", "qty": 2, "price": 0.25}, {"sku": "b", "qty": 4, "price": 1.5}], 6.5),
        ([{"sku": f"s{i}", "qty": i, "price": i} for i in range(1, 11)], 385),
    ],
)
def test_total_is_the_sum_of_quantity_times_price(
    items: list[dict[str, Any]], total: float
) -> None:
    ORDER.check_data("OrderPlaced", {"items": items})
    state = reduce_order(None, _event("OrderPlaced", {"items": items}, 1))
    assert state == {"status": "placed", "items": items, "total": total}


def test_cancellation_keeps_the_order_and_records_the_reason() -> None:
    placed = reduce_order(None, _event(*LIFECYCLE[0], 1))
    paid = reduce_order(placed, _event("OrderPaid", {"amount": 17}, 2))
    cancelled = reduce_order(paid, _event("OrderCancelled", {"reason": "changed mind"}, 3))
    assert cancelled == {**paid, "status": "cancelled", "reason": "changed mind"}
    assert paid["status"] == "paid"  # the reducer returned new state, not a mutated one


def test_the_reducer_does_not_alias_event_data() -> None:
    event = _event(*LIFECYCLE[0], 1)
    state = reduce_order(None, event)
    state["items"][0]["qty"] = 999
    assert event.data["items"][0]["qty"] == 2


def test_the_snapshot_rule_is_every_50_or_a_terminal_event() -> None:
    def fires(version: int, kind: str, snapshot_version: int = 0) -> bool:
        progress = Progress(
            version,
            kind,
            _event("OrderPaid", {"amount": 1}, 1).occurred_at,
            snapshot_version=snapshot_version,
        )
        return ORDER.snapshot_rule.should_snapshot(progress)

    assert not fires(1, "OrderPlaced")
    assert not fires(49, "OrderPaid")
    assert fires(50, "OrderPaid")
    assert fires(3, "OrderDelivered")
    assert fires(2, "OrderCancelled")
    assert not fires(3, "OrderDelivered", snapshot_version=3)


def test_every_order_event_is_routed_to_orders() -> None:
    assert ORDER.downstream_topics() == ["orders"]
    assert all(ORDER.routes[0].matches(kind) for kind in TYPES)


@pytest.mark.parametrize(("kind", "data"), [*LIFECYCLE, ("OrderCancelled", {"reason": "r"})])
def test_valid_data_passes(kind: str, data: dict[str, Any]) -> None:
    ORDER.check_data(kind, data)


def test_extra_fields_are_allowed() -> None:
    ORDER.check_data("OrderPaid", {"amount": 1, "currency": "EUR"})
    ORDER.check_data("OrderPlaced", {"items": [{"sku": "a", "qty": 1, "price": 1, "name": "A"}]})


@pytest.mark.parametrize(
    ("kind", "data", "mentions"),
    [
        ("OrderPlaced", {}, "data.items is required"),
        ("OrderPlaced", {"items": []}, "data.items must hold 1"),
        ("OrderPlaced", {"items": {"sku": "a"}}, "data.items must be a list"),
        ("OrderPlaced", {"items": ["a"]}, "data.items[0] must be an object"),
        ("OrderPlaced", {"items": [{"qty": 1, "price": 1}]}, "data.items[0].sku is required"),
        ("OrderPlaced", {"items": [{"sku": "", "qty": 1, "price": 1}]}, "data.items[0].sku"),
        ("OrderPlaced", {"items": [{"sku": "x" * 65, "qty": 1, "price": 1}]}, "at most 64"),
        (
            "OrderPlaced",
            {"items": [{"sku": "a", "qty": 0, "price": 1}]},
            "data.items[0].qty must be greater than 0",
        ),
        (
            "OrderPlaced",
            {"items": [{"sku": "a", "qty": 1.5, "price": 1}]},
            "data.items[0].qty must be an integer",
        ),
        (
            "OrderPlaced",
            {"items": [{"sku": "a", "qty": True, "price": 1}]},
            "data.items[0].qty must be an integer",
        ),
        (
            "OrderPlaced",
            {"items": [{"sku": "a", "qty": 1, "price": "1"}]},
            "data.items[0].price must be a number",
        ),
        (
            "OrderPlaced",
            {"items": [{"sku": "a", "qty": 1, "price": 1}, {"sku": "b", "qty": -2, "price": 1}]},
            "data.items[1].qty",
        ),
        ("OrderPaid", {}, "data.amount is required"),
        ("OrderPaid", {"amount": 0}, "data.amount must be greater than 0"),
        ("OrderPaid", {"amount": -5}, "data.amount must be greater than 0"),
        ("OrderPaid", {"amount": "5"}, "data.amount must be a number"),
        ("OrderPaid", {"amount": None}, "data.amount must be a number"),
        ("OrderShipped", {}, "data.carrier is required"),
        ("OrderShipped", {"carrier": 7}, "data.carrier must be a non-empty string"),
        ("OrderCancelled", {"reason": ""}, "data.reason must be a non-empty string"),
    ],
)
def test_invalid_data_says_what_and_where(kind: str, data: dict[str, Any], mentions: str) -> None:
    with pytest.raises(InvalidEventData) as caught:
        ORDER.check_data(kind, data)
    message = str(caught.value)
    assert message.startswith(f"{kind}: ")
    assert mentions in message
    assert caught.value.retriable is False


def test_an_unknown_event_type_lists_the_known_ones() -> None:
    with pytest.raises(UnknownEventType) as caught:
        ORDER.check_data("OrderRefunded", {})
    message = str(caught.value)
    assert "'OrderRefunded'" in message
    assert all(kind in message for kind in TYPES)
    with pytest.raises(UnknownEventType):
        ORDER.spec("orderplaced")  # names are case-sensitive
