"""Seed 004's other domains through the write path on memory adapters: cart, order book, game log."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta

from topics.envelope import new_event
from workers.adapters.memory import MemoryRuleStates
from workers.cqrs.dispatcher import Dispatcher, register_aggregate
from workers.cqrs.handlers import Publisher
from workers.cqrs.repository import Repository
from workers.examples.cqrs.trading import COMMANDS as TRADING_COMMANDS
from workers.examples.cqrs.trading import PlaceOrder
from workers.examples.domains import all_domains
from workers.examples.domains.game import SNAPSHOT_EVERY_S
from workers.examples.domains.trading import ORDER_BOOK
from workers.metrics import create_metrics
from workers.roles.append.outbox import Outbox
from workers.roles.read.snapshotter import Snapshotter

from .pipeline import STORED, pipeline
from .support import T0


async def test_a_cart_is_filled_checked_out_and_closed() -> None:
    p = await pipeline(all_domains())
    assert (await p.ask("cart:c1", "CartOpened", {"customer_id": "ann"})).status == 202
    await p.flush()  # a refusal is answered once the store holds what it follows
    early = await p.ask("cart:c1", "CartCheckedOut")
    assert early.status == 409 and early.body["allowed"] == [
        "ItemAdded",
        "ItemRemoved",
        "QuantityChanged",
    ]
    item = {"sku": "tea", "qty": 2, "unit_price_cents": 350}
    assert (await p.ask("cart:c1", "ItemAdded", item)).status == 202
    assert (await p.ask("cart:c1", "CartCheckedOut")).status == 202
    await p.flush()
    late = await p.ask("cart:c1", "ItemAdded", item)
    assert late.status == 409 and "may not follow CartCheckedOut" in late.body["message"]
    await p.flush()
    state = await p.loader.latest(p.domains.get("cart"), "c1", save=False)
    assert state.state is not None and state.state["status"] == "checked_out"
    assert state.state["total_cents"] == 700
    snapshot = await p.snapshots.load(("cart", "c1"))
    assert snapshot is not None and snapshot.version == 3  # on CartCheckedOut
    assert (await p.audit()).ok


async def test_an_order_book_over_http_refuses_what_its_rulebook_refuses() -> None:
    p = await pipeline(all_domains())

    async def ask(kind: str, **data: object) -> tuple[int, str]:
        answer = await p.ask("order_book:ACME", kind, data)
        return answer.status, str(answer.body.get("message", ""))

    assert (await ask("InstrumentListed", tick=1))[0] == 201
    sell = {"trader_id": "ann", "side": "sell", "price": 100, "qty": 5}
    assert (await ask("OrderPlaced", order_id="s1", **sell))[0] == 201
    buy = {"trader_id": "bob", "side": "buy", "price": 101, "qty": 3}
    assert (await ask("OrderPlaced", order_id="b1", **buy))[0] == 201  # crosses the book
    status, message = await ask("OrderPlaced", order_id="b2", **buy)
    assert status == 409 and "the book is crossed" in message
    status, message = await ask(
        "TradeExecuted", buy_order_id="b1", sell_order_id="s1", price=101, qty=3
    )
    assert status == 409 and "must be 100" in message
    trade = {"buy_order_id": "b1", "sell_order_id": "s1", "price": 100, "qty": 3}
    assert (await ask("TradeExecuted", **trade))[0] == 201
    assert (await p.audit()).ok  # the auditor re-runs the rulebook over the stored history


async def test_place_order_stores_an_order_and_its_trades_in_one_append() -> None:
    p = await pipeline(all_domains())
    assert (await p.ask("order_book:XYZ", "InstrumentListed", {"tick": 1})).status == 201
    outbox = Outbox(p.store, p.producer, topic=STORED, metrics=p.metrics, mode="sync")
    dispatcher = Dispatcher()
    register_aggregate(
        dispatcher, ORDER_BOOK, TRADING_COMMANDS, repository=Repository(p.loader),
        publisher=Publisher(outbox),
    )  # fmt: skip

    def order(oid: str, side: str, price: int, qty: int, trader: str) -> PlaceOrder:
        return PlaceOrder(aggregate_id="XYZ", order_id=oid, trader_id=trader, side=side,
                          price=price, qty=qty)  # fmt: skip

    await dispatcher.dispatch(order("s1", "sell", 100, 2, "ann"))
    await dispatcher.dispatch(order("s2", "sell", 101, 2, "bob"))
    appends = p.store.calls["append"]
    handled = await dispatcher.dispatch(order("b1", "buy", 101, 3, "cy"))
    assert [e.type for e in handled.events] == ["OrderPlaced", "TradeExecuted", "TradeExecuted"]
    assert p.store.calls["append"] == appends + 1 and handled.published
    prices = [(e.data["price"], e.data["qty"]) for e in handled.events[1:]]
    assert prices == [(100, 2), (101, 1)]
    # Two buyers at once: both commands apply, each on the book the other left.
    await asyncio.gather(
        dispatcher.dispatch(order("b2", "buy", 101, 1, "dan")),
        dispatcher.dispatch(order("b3", "buy", 101, 1, "eve")),
    )
    state = (await p.loader.latest(p.domains.get("order_book"), "XYZ", save=False)).state
    assert state is not None and state["asks"] == [] and state["volume"] == 4
    assert [b["order_id"] for b in state["bids"]] in (["b3"], ["b2"])
    assert (await p.audit()).ok


async def test_a_long_match_is_snapshotted_by_play_time() -> None:
    p = await pipeline(all_domains())
    snapshotter = Snapshotter(
        loader=p.loader, domains=p.domains, metrics=create_metrics(), concurrency=2,
        rule_states=MemoryRuleStates(),
    )  # fmt: skip
    kinds = ["PlayerMoved", "PlayerScored", "ItemPicked", "PlayerPinged"]
    data = {"PlayerMoved": {"x": 1, "y": 2}, "PlayerScored": {"points": 1},
            "ItemPicked": {"item": "coin"}, "PlayerPinged": {"latency_ms": 20}}  # fmt: skip
    events = [new_event("game", "m1", "MatchStarted", {"map": "dust", "players": ["ann"]},
                        version=1, occurred_at=T0)]  # fmt: skip
    for v in range(2, 6001):  # 6,000 events in 60 s of play: 100 a second
        kind = kinds[v % 4]
        at = T0 + timedelta(milliseconds=10 * v)
        events.append(new_event("game", "m1", kind, {"player_id": "ann", **data[kind]},
                                version=v, occurred_at=at))  # fmt: skip
    events.append(new_event("game", "m1", "MatchEnded", {"winner": "ann"}, version=6001,
                            occurred_at=T0 + timedelta(seconds=60)))  # fmt: skip
    for start in range(0, len(events), 500):  # as the stream hands them over, in batches
        batch = events[start : start + 500]
        await p.store.append(batch)
        await asyncio.gather(*await snapshotter.handle(batch))
    versions = [s.version for s in p.snapshots.saved if s.aggregate_id == "m1"]
    times = [events[v - 1].occurred_at for v in versions]
    assert versions[0] <= 500 and versions[-1] == 6001  # the first batch, and the end
    assert 10 <= len(versions) <= 14  # about one per 5 s of play, not one per n events
    for before, after in itertools.pairwise(times[:-1]):  # the end's comes when it comes
        assert after - before >= timedelta(seconds=SNAPSHOT_EVERY_S)
    assert p.snapshots.saved[-1].state["status"] == "ended"
