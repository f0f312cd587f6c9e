"""Example domain **order_book** (sync): one instrument's limit order book, validated on its state.

Why events: a trading record kept only as balances hides how they came to be; as events, every
order and every trade is there for an auditor. Each aggregate is one instrument's book.

The state validator is the exchange's rulebook, checked on the replayed book before anything
is stored. Above all, **a trade never matches a sell without a buy at a compatible price**:
``TradeExecuted`` is accepted only between the best resting bid and the best resting ask
(price-time priority), when the bid's price is at least the ask's, at the price of the order
that rested first, for no more than either has left, and never between one trader's own
orders. A new order may cross the book; until trades (or cancels) uncross it, no other order
is accepted. ``match_trades`` computes those trades; the CQRS command ``PlaceOrder``
(``workers.examples.cqrs.trading``) records an order and its trades in one atomic append, so other
writers never see a crossed book.

Prices and quantities are whole numbers (ticks of the currency's minor unit, lots), so the
book's arithmetic is exact. The book holds at most ``MAX_RESTING`` orders; the state keeps
the last ``LAST_TRADES`` trades and running totals, not the whole history.
"""

from __future__ import annotations

from snapshot_rules.domain import Domain, Mode, Route, event
from snapshot_rules.replay import State
from snapshot_rules.rules import every, on
from snapshot_rules.schema import Choice, Number, Text, fields
from topics.envelope import Event
from topics.jsonvalue import Json, JsonObject

BUY, SELL = "buy", "sell"
MAX_RESTING = 10_000
LAST_TRADES = 20
MAX_PRICE = 10**9
MAX_QTY = 10**6
_ID = Text(max_length=64)
_PRICE = Number(positive=True, integer=True, maximum=MAX_PRICE)
_QTY = Number(positive=True, integer=True, maximum=MAX_QTY)

_ORDER = fields(
    closed=True, order_id=_ID, trader_id=_ID, side=Choice((BUY, SELL)), price=_PRICE, qty=_QTY
)

Order = JsonObject
"""``{order_id, trader_id, side, price, qty (left), seq}``; ``seq`` orders arrivals in time."""


def best(state: State, side: str) -> Order | None:
    """The resting order with priority on ``side``: best price, then earliest arrival."""
    book: list[Order] = state["bids" if side == BUY else "asks"]
    return book[0] if book else None


def crossed(state: State) -> bool:
    bid, ask = best(state, BUY), best(state, SELL)
    return bid is not None and ask is not None and bid["price"] >= ask["price"]


def _find(state: State, order_id: str) -> Order | None:
    orders: list[Order] = [*state["bids"], *state["asks"]]
    return next((order for order in orders if order["order_id"] == order_id), None)


def _sorted(orders: list[Order], side: str) -> list[Order]:
    sign = -1 if side == BUY else 1
    return sorted(orders, key=lambda o: (sign * o["price"], o["seq"]))


def match_trades(state: State) -> list[JsonObject]:
    """The trades that uncross the book by price-time priority (empty when it is not crossed)."""
    trades: list[JsonObject] = []
    book = state
    while crossed(book):
        bid, ask = best(book, BUY), best(book, SELL)
        assert bid is not None and ask is not None
        maker = bid if bid["seq"] < ask["seq"] else ask
        trade = {
            "buy_order_id": bid["order_id"],
            "sell_order_id": ask["order_id"],
            "price": maker["price"],
            "qty": min(bid["qty"], ask["qty"]),
        }
        if bid["trader_id"] == ask["trader_id"]:
            break  # self-trades are refused; the trader cancels one of the two
        trades.append(trade)
        book = _trade(book, trade)
    return trades


def _trade(state: State, trade: JsonObject) -> State:
    def fill(orders: list[Order], order_id: str) -> list[Order]:
        out = []
        for order in orders:
            if order["order_id"] == order_id:
                order = {**order, "qty": order["qty"] - trade["qty"]}
            if order["qty"] > 0:
                out.append(order)
        return out

    last = [*state["last_trades"], trade][-LAST_TRADES:]
    return {
        **state,
        "bids": fill(state["bids"], trade["buy_order_id"]),
        "asks": fill(state["asks"], trade["sell_order_id"]),
        "last_trades": last,
        "last_price": trade["price"],
        "volume": state["volume"] + trade["qty"],
        "trades": state["trades"] + 1,
    }


def reduce_book(state: State | None, event: Event) -> State:
    """Fold one stored book event; pure."""
    data = event.data
    if event.type == "InstrumentListed":
        return {
            "tick": data["tick"],
            "halted": False,
            "bids": [],
            "asks": [],
            "seq": 0,
            "last_trades": [],
            "last_price": None,
            "volume": 0,
            "trades": 0,
        }
    book = dict(state or {})
    if event.type == "TradingHalted":
        return {**book, "halted": True}
    if event.type == "TradingResumed":
        return {**book, "halted": False}
    if event.type == "OrderPlaced":
        side = "bids" if data["side"] == BUY else "asks"
        order = {k: data[k] for k in ("order_id", "trader_id", "side", "price", "qty")}
        order["seq"] = book["seq"] + 1
        return {**book, side: _sorted([*book[side], order], data["side"]), "seq": book["seq"] + 1}
    if event.type == "OrderCancelled":
        gone = data["order_id"]
        return {
            **book,
            "bids": [o for o in book["bids"] if o["order_id"] != gone],
            "asks": [o for o in book["asks"] if o["order_id"] != gone],
        }
    if event.type == "TradeExecuted":
        return _trade(book, dict(data))
    return book


def validate_book(state: State | None, requested: Event) -> str | None:
    """The rulebook on the current book: None accepts, a sentence refuses."""
    kind, data = requested.type, requested.data
    if kind == "InstrumentListed":
        return None if state is None else "it is already listed"
    if state is None:
        return f"it is not listed; {kind} needs an InstrumentListed first"
    if kind == "TradingHalted":
        return "trading is already halted" if state["halted"] else None
    if kind == "TradingResumed":
        return None if state["halted"] else "trading is not halted"
    if kind == "OrderCancelled":
        order = _find(state, data["order_id"])
        if order is None:
            return f"no order {data['order_id']} rests in the book"
        return None if order["trader_id"] == data["trader_id"] else "only its trader may cancel it"
    if state["halted"]:
        return "trading is halted"
    if kind == "OrderPlaced":
        return _check_order(state, data)
    if kind == "TradeExecuted":
        return _check_trade(state, data)
    return None


def _check_order(state: State, data: Json) -> str | None:
    if crossed(state):
        return "the book is crossed; execute the crossing orders (or cancel one) first"
    if data["price"] % state["tick"]:
        return f"price {data['price']} is not a multiple of the tick {state['tick']}"
    if _find(state, data["order_id"]) is not None:
        return f"order {data['order_id']} already rests in the book"
    if len(state["bids"]) + len(state["asks"]) >= MAX_RESTING:
        return f"the book holds {MAX_RESTING} orders, its limit"
    return None


def _check_trade(state: State, data: Json) -> str | None:
    bid, ask = best(state, BUY), best(state, SELL)
    if bid is None or bid["order_id"] != data["buy_order_id"]:
        return f"buy order {data['buy_order_id']} is not the best resting bid"
    if ask is None or ask["order_id"] != data["sell_order_id"]:
        return f"sell order {data['sell_order_id']} is not the best resting ask"
    if bid["price"] < ask["price"]:
        return f"the bid at {bid['price']} is below the ask at {ask['price']}: no compatible price"
    if bid["trader_id"] == ask["trader_id"]:
        return f"both orders are trader {bid['trader_id']}'s; self-trades are refused"
    maker = bid if bid["seq"] < ask["seq"] else ask
    if data["price"] != maker["price"]:
        return f"the trade price must be {maker['price']}, the price of the order that rested first"
    if data["qty"] > min(bid["qty"], ask["qty"]):
        return f"qty {data['qty']} is more than the {min(bid['qty'], ask['qty'])} both have left"
    return None


ORDER_BOOK = Domain(
    name="order_book",
    mode=Mode.SYNC,
    validator=validate_book,
    events={
        "InstrumentListed": event(fields(closed=True, tick=_PRICE)),
        "OrderPlaced": event(_ORDER),
        "OrderCancelled": event(fields(closed=True, order_id=_ID, trader_id=_ID)),
        "TradeExecuted": event(
            fields(closed=True, buy_order_id=_ID, sell_order_id=_ID, price=_PRICE, qty=_QTY)
        ),
        "TradingHalted": event(fields(closed=True, reason=Text(max_length=200))),
        "TradingResumed": event(fields(closed=True)),
    },
    reducer=reduce_book,
    snapshot_rule=every(50) | on("TradingHalted"),
    routes=(Route("trades", frozenset({"TradeExecuted"})), Route("orders_placed")),
)
