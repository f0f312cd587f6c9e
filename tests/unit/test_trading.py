"""The order book: its rulebook, and no trade ever pairs a sell with a buy at an incompatible price."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from snapshot_rules.replay import replay
from topics.errors import InvalidEventData, TransitionRejected
from workers.cqrs.aggregate import AggregateRoot, StateRejected
from workers.examples.cqrs.trading import CancelOrder, PlaceOrder, cancel_order, place_order
from workers.examples.domains.trading import ORDER_BOOK, crossed, match_trades


def listed(tick: int = 1) -> AggregateRoot:
    book = AggregateRoot(ORDER_BOOK, "ACME")
    book.record("InstrumentListed", {"tick": tick})
    return book


def order(oid: str, side: str, price: int, qty: int, trader: str = "t1") -> dict[str, Any]:
    return {"order_id": oid, "trader_id": trader, "side": side, "price": price, "qty": qty}


def place(book: AggregateRoot, oid: str, side: str, price: int, qty: int, trader: str) -> None:
    command = PlaceOrder(aggregate_id="ACME", order_id=oid, trader_id=trader, side=side,
                         price=price, qty=qty)  # fmt: skip
    place_order(book, command)


def test_a_crossing_order_trades_at_the_resting_price_by_priority() -> None:
    book = listed()
    place(book, "s1", "sell", 101, 5, "ann")
    place(book, "s2", "sell", 100, 5, "bob")
    place(book, "s3", "sell", 100, 5, "cy")  # same price as s2, later: lower priority
    place(book, "b1", "buy", 102, 8, "dan")
    trades = [e.data for e in book.changes if e.type == "TradeExecuted"]
    assert trades == [
        {"buy_order_id": "b1", "sell_order_id": "s2", "price": 100, "qty": 5},
        {"buy_order_id": "b1", "sell_order_id": "s3", "price": 100, "qty": 3},
    ]
    state = book.state
    assert state is not None and not crossed(state)
    assert [(o["order_id"], o["qty"]) for o in state["asks"]] == [("s3", 2), ("s1", 5)]
    assert state["bids"] == [] and (state["volume"], state["last_price"]) == (8, 100)


@pytest.mark.parametrize(
    ("trade", "problem"),
    [({"buy_order_id": "b1", "sell_order_id": "s1", "price": 99, "qty": 1}, "below the ask"),
     ({"buy_order_id": "bx", "sell_order_id": "s1", "price": 99, "qty": 1}, "not the best resting bid"),
     ({"buy_order_id": "b1", "sell_order_id": "sx", "price": 99, "qty": 1}, "not the best resting ask")],
)  # fmt: skip
def test_a_trade_between_incompatible_prices_is_refused(
    trade: dict[str, Any], problem: str
) -> None:
    book = listed()
    book.record("OrderPlaced", order("b1", "buy", 99, 5, "ann"))
    book.record("OrderPlaced", order("s1", "sell", 100, 5, "bob"))
    with pytest.raises(StateRejected, match=problem):
        book.record("TradeExecuted", trade)


def test_the_rulebook_refuses_what_the_book_cannot_take() -> None:
    book = listed(tick=5)
    cases = [
        ("OrderPlaced", order("o1", "buy", 101, 1), "not a multiple of the tick 5"),
        ("OrderCancelled", {"order_id": "nope", "trader_id": "t1"}, "no order nope rests"),
        ("TradingResumed", {}, "trading is not halted"),
        ("InstrumentListed", {"tick": 1}, "already listed"),
    ]
    for kind, data, problem in cases:
        with pytest.raises(StateRejected, match=problem):
            book.record(kind, data)
    book.record("OrderPlaced", order("o1", "buy", 100, 1, "ann"))
    with pytest.raises(StateRejected, match="already rests"):
        book.record("OrderPlaced", order("o1", "buy", 100, 1, "ann"))
    with pytest.raises(StateRejected, match="only its trader may cancel"):
        book.record("OrderCancelled", {"order_id": "o1", "trader_id": "bob"})
    book.record("TradingHalted", {"reason": "news"})
    with pytest.raises(StateRejected, match="trading is halted"):
        book.record("OrderPlaced", order("o2", "sell", 105, 1))
    book.record("OrderCancelled", {"order_id": "o1", "trader_id": "ann"})  # cancels still work
    with pytest.raises(StateRejected, match="not listed"):
        AggregateRoot(ORDER_BOOK, "NEW").record("OrderPlaced", order("x", "buy", 1, 1))


def test_a_crossed_book_takes_only_the_trades_that_uncross_it() -> None:
    book = listed()
    book.record("OrderPlaced", order("s1", "sell", 100, 5, "ann"))
    book.record("OrderPlaced", order("b1", "buy", 101, 2, "bob"))  # crosses: allowed, once
    with pytest.raises(StateRejected, match="the book is crossed"):
        book.record("OrderPlaced", order("b2", "buy", 90, 1, "cy"))
    with pytest.raises(StateRejected, match="must be 100, the price of the order that rested"):
        book.record(
            "TradeExecuted", {"buy_order_id": "b1", "sell_order_id": "s1", "price": 101, "qty": 2}
        )
    with pytest.raises(StateRejected, match="more than the 2 both have left"):
        book.record(
            "TradeExecuted", {"buy_order_id": "b1", "sell_order_id": "s1", "price": 100, "qty": 3}
        )
    book.record(
        "TradeExecuted", {"buy_order_id": "b1", "sell_order_id": "s1", "price": 100, "qty": 2}
    )
    assert book.state is not None and not crossed(book.state)


def test_one_traders_orders_never_trade_with_each_other() -> None:
    book = listed()
    place(book, "s1", "sell", 100, 5, "ann")
    place(book, "b1", "buy", 100, 5, "ann")
    assert [e.type for e in book.changes] == ["InstrumentListed", "OrderPlaced", "OrderPlaced"]
    with pytest.raises(StateRejected, match="self-trades are refused"):
        book.record(
            "TradeExecuted", {"buy_order_id": "b1", "sell_order_id": "s1", "price": 100, "qty": 1}
        )
    cancel_order(book, CancelOrder(aggregate_id="ACME", order_id="b1", trader_id="ann"))
    assert book.state is not None and not crossed(book.state)


def test_an_unknown_side_is_refused_by_the_schema() -> None:
    with pytest.raises(InvalidEventData, match=r"data\.side must be one of 'buy', 'sell'"):
        listed().record("OrderPlaced", order("o", "hold", 1, 1))
    with pytest.raises(TransitionRejected):  # StateRejected is a TransitionRejected: 409
        listed().record("InstrumentListed", {"tick": 1})


# --- Hypothesis: whatever orders arrive, every trade pairs compatible prices ------------------

commands = st.lists(
    st.one_of(
        st.tuples(st.just("place"), st.sampled_from(["buy", "sell"]), st.integers(95, 105),
                  st.integers(1, 9), st.sampled_from(["ann", "bob", "cy"])),
        st.tuples(st.just("cancel"), st.integers(0, 30)),
    ),
    max_size=40,
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(commands)
@example(  # a self-trade at the top held two orders apart; the cancel must let them trade
    [("cancel", 0), ("place", "buy", 95, 1, "bob"), ("place", "buy", 95, 1, "ann"),
     ("place", "sell", 95, 1, "bob"), ("cancel", 1)]
)  # fmt: skip
def test_no_trade_ever_matches_a_sell_without_a_buy_at_a_compatible_price(
    steps: list[tuple[Any, ...]],
) -> None:
    book = listed()
    placed: dict[str, dict[str, Any]] = {}
    for n, step in enumerate(steps):
        before = len(book.changes)
        try:
            if step[0] == "place":
                _, side, price, qty, trader = step
                place(book, f"o{n}", side, price, qty, trader)
                placed[f"o{n}"] = {"side": side, "price": price, "qty": qty, "trader": trader}
            else:
                oid = f"o{step[1]}"
                trader = placed.get(oid, {}).get("trader", "ann")
                cancel_order(book, CancelOrder(aggregate_id="ACME", order_id=oid, trader_id=trader))
        except StateRejected:
            # Refused as a whole: a trade the matcher proposed is never one the rules refuse.
            assert len(book.changes) == before
            continue
        state = book.state
        assert state is not None and (not crossed(state) or match_trades(state) == [])
    filled: dict[str, int] = {}
    for event in book.changes:
        if event.type != "TradeExecuted":
            continue
        buy, sell = placed[event.data["buy_order_id"]], placed[event.data["sell_order_id"]]
        assert (buy["side"], sell["side"]) == ("buy", "sell")
        assert sell["price"] <= event.data["price"] <= buy["price"]
        assert buy["trader"] != sell["trader"]
        for oid in (event.data["buy_order_id"], event.data["sell_order_id"]):
            filled[oid] = filled.get(oid, 0) + event.data["qty"]
            assert filled[oid] <= placed[oid]["qty"]
    assert replay(ORDER_BOOK.reducer, list(book.changes)).state == book.state
