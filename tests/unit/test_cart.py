"""The shopping cart domain: its fold, its transitions, bounds, and ItemAdded's schema versions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from snapshot_rules.replay import replay
from topics.envelope import Event, new_event
from topics.errors import InvalidEventData, TransitionRejected
from workers.examples.domains.cart import CART, MAX_ITEMS, price_in_cents, reduce_cart

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def cart(*steps: tuple[str, dict[str, Any]] | tuple[str, dict[str, Any], int]) -> list[Event]:
    events = []
    for version, step in enumerate(steps, start=1):
        kind, data = step[0], step[1]
        schema = step[2] if len(step) > 2 else CART.schema_version(kind)  # type: ignore[misc]
        at = T0 + timedelta(seconds=version)
        events.append(new_event("cart", "c1", kind, data, version=version, occurred_at=at,
                                schema_version=schema))  # fmt: skip
    return events


def add(sku: str, qty: int, cents: int) -> tuple[str, dict[str, Any]]:
    return ("ItemAdded", {"sku": sku, "qty": qty, "unit_price_cents": cents})


OPENED = ("CartOpened", {"customer_id": "ann"})


def test_items_quantities_and_an_exact_total() -> None:
    steps = [OPENED, add("tea", 2, 350), add("cup", 1, 1299), add("tea", 1, 350),
             ("QuantityChanged", {"sku": "cup", "qty": 3}), ("ItemRemoved", {"sku": "tea"})]  # fmt: skip
    state = replay(reduce_cart, cart(*steps)).state
    assert state is not None
    assert state["items"] == {"cup": {"qty": 3, "unit_price_cents": 1299}}
    assert (state["total_cents"], state["status"], state["ignored"]) == (3897, "open", 0)


def test_changes_to_items_the_cart_does_not_hold_change_nothing_and_are_counted() -> None:
    steps = [OPENED, add("tea", 1, 100), ("ItemRemoved", {"sku": "cup"}),
             ("QuantityChanged", {"sku": "cup", "qty": 2})]  # fmt: skip
    state = replay(reduce_cart, cart(*steps)).state
    assert state is not None and state["ignored"] == 2 and state["total_cents"] == 100


def test_the_cart_holds_a_bounded_number_of_distinct_items() -> None:
    steps = [OPENED, *(add(f"sku-{i}", 1, 1) for i in range(MAX_ITEMS + 5))]
    state = replay(reduce_cart, cart(*steps)).state
    assert state is not None
    assert len(state["items"]) == MAX_ITEMS and state["ignored"] == 5


@pytest.mark.parametrize(
    ("current", "requested"),
    [(None, "ItemAdded"), (None, "CartCheckedOut"), ("CartOpened", "CartCheckedOut"),
     ("CartCheckedOut", "ItemAdded"), ("CartAbandoned", "CartOpened"),
     ("CartCheckedOut", "CartAbandoned")],
)  # fmt: skip
def test_the_marker_refuses_what_may_not_follow(current: str | None, requested: str) -> None:
    with pytest.raises(TransitionRejected):
        CART.check_transition("c1", current, requested)


def test_what_may_follow_is_accepted() -> None:
    CART.check_transition("c1", None, "CartOpened")
    CART.check_transition("c1", "CartOpened", "ItemAdded")
    CART.check_transition("c1", "ItemRemoved", "CartCheckedOut")
    CART.check_transition("c1", "CartOpened", "CartAbandoned")


def test_an_item_added_at_version_1_is_read_in_cents() -> None:
    old = cart(OPENED, ("ItemAdded", {"sku": "tea", "qty": 2, "price": 3.5}, 1))[1]
    current = CART.upcast(old)
    assert (current.schema_version, dict(current.data)) == (
        2, {"sku": "tea", "qty": 2, "unit_price_cents": 350},
    )  # fmt: skip
    CART.check_data(current.type, current.data)
    assert price_in_cents({"sku": "x", "qty": 1, "price": 0.29}) == {
        "sku": "x", "qty": 1, "unit_price_cents": 29,  # not 28.999... truncated
    }  # fmt: skip
    assert CART.upcast(current) is current  # already current: unchanged
    with pytest.raises(InvalidEventData, match="unit_price_cents is required"):
        CART.check_data("ItemAdded", {"sku": "tea", "qty": 2, "price": 3.5})  # v1 data is not v2


@pytest.mark.parametrize(
    ("data", "problem"),
    [({"sku": "t", "qty": 0, "unit_price_cents": 1}, "greater than 0"),
     ({"sku": "t", "qty": 1.5, "unit_price_cents": 1}, "an integer"),
     ({"sku": "t", "qty": 1, "unit_price_cents": -1}, "at least 0"),
     ({"sku": "t", "qty": 1, "unit_price_cents": 10**9}, "at most"),
     ({"sku": "", "qty": 1, "unit_price_cents": 1}, "non-empty")],
)  # fmt: skip
def test_bad_item_data_is_refused_naming_the_field(data: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidEventData, match=problem):
        CART.check_data("ItemAdded", data)
