"""Typed commands of the order book: an order and the trades it makes, in one atomic append.

``PlaceOrder`` records ``OrderPlaced`` and then, while the book is crossed, each
``TradeExecuted`` that ``match_trades`` finds, every one validated by the book's rulebook on
the state the ones before it left. The repository stores them together at the expected
version, so no other writer ever sees the book crossed; if another writer got there first,
the whole command runs again on the new book.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Never

from workers.cqrs.aggregate import AggregateRoot
from workers.cqrs.commands import Command
from workers.cqrs.handlers import Decide
from workers.examples.domains.trading import match_trades


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaceOrder(Command):
    """A limit order on the instrument ``aggregate_id``; it trades at once where it crosses."""

    order_id: str
    trader_id: str
    side: str
    price: int
    qty: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelOrder(Command):
    """Take what is left of one of the trader's resting orders off the book."""

    order_id: str
    trader_id: str


def place_order(aggregate: AggregateRoot, command: PlaceOrder) -> None:
    order = {
        "order_id": command.order_id,
        "trader_id": command.trader_id,
        "side": command.side,
        "price": command.price,
        "qty": command.qty,
    }
    aggregate.record("OrderPlaced", order, metadata=command.metadata)
    assert aggregate.state is not None
    for trade in match_trades(aggregate.state):
        aggregate.record("TradeExecuted", trade, metadata=command.metadata)


def cancel_order(aggregate: AggregateRoot, command: CancelOrder) -> None:
    cancel = {"order_id": command.order_id, "trader_id": command.trader_id}
    aggregate.record("OrderCancelled", cancel, metadata=command.metadata)
    assert aggregate.state is not None
    # A cancel can uncover a match: a self-trade at the top of the book held two orders
    # apart that can each trade with someone else now.
    for trade in match_trades(aggregate.state):
        aggregate.record("TradeExecuted", trade, metadata=command.metadata)


COMMANDS: Mapping[type[Command], Decide[Never]] = {
    PlaceOrder: place_order,
    CancelOrder: cancel_order,
}
"""Each command and how it decides, as
``register_aggregate(dispatcher, ORDER_BOOK, COMMANDS, ...)`` takes them."""
