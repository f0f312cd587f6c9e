"""The EventBus contract, run against every bus on its real server."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from tests.bus.conftest import BusCase, Recorder, eventually, stored
from tests.waiting import within
from topics.errors import InvalidInput
from workers.bus import BusClosed


async def test_a_subscriber_receives_exactly_the_published_event(case: BusCase) -> None:
    got = Recorder()
    await case.bus.subscribe("*", got)
    event = stored()

    await case.bus.publish(event)

    await eventually(lambda: len(got.calls) == 1)
    assert got.calls == [event]


async def test_a_typed_subscriber_gets_only_its_type_and_star_gets_all(case: BusCase) -> None:
    paid, everything = Recorder(), Recorder()
    await asyncio.gather(case.bus.subscribe("OrderPaid", paid), case.bus.subscribe("*", everything))
    placed_event, paid_event = stored("OrderPlaced", version=1), stored("OrderPaid", version=2)

    await case.bus.publish(placed_event)
    await case.bus.publish(paid_event)

    await eventually(lambda: len(everything.calls) == 2 and len(paid.calls) == 1)
    assert everything.calls == [placed_event, paid_event]
    assert paid.calls == [paid_event]


async def test_two_subscribers_both_get_the_event(case: BusCase) -> None:
    first, second = Recorder(), Recorder()
    await asyncio.gather(case.bus.subscribe("*", first), case.bus.subscribe("*", second))
    event = stored()

    await case.bus.publish(event)

    await eventually(lambda: len(first.calls) == 1 and len(second.calls) == 1)
    assert first.calls == second.calls == [event]


async def test_an_unversioned_event_is_refused_and_delivers_nothing(case: BusCase) -> None:
    got = Recorder()
    await case.bus.subscribe("*", got)
    unversioned = replace(stored(), version=None)

    with pytest.raises(InvalidInput, match="has no version: only stored events"):
        await case.bus.publish(unversioned)
    sentinel = stored(version=2)
    await case.bus.publish(sentinel)

    await eventually(lambda: len(got.calls) == 1)
    assert got.calls == [sentinel]  # the refused event was never on the bus before it


async def test_a_failing_handler_does_not_stop_another_subscriber(case: BusCase) -> None:
    failing, healthy = Recorder(fail_first=1_000), Recorder()
    await asyncio.gather(case.bus.subscribe("*", failing), case.bus.subscribe("*", healthy))
    first, second = stored(version=1), stored(version=2)

    await case.bus.publish(first)
    await case.bus.publish(second)

    await eventually(lambda: len(healthy.calls) == 2 and len(failing.calls) >= 1)
    assert healthy.calls == [first, second]


async def test_bad_subscriptions_are_refused(case: BusCase) -> None:
    for bad in ("", "Order.Paid", "order paid", "1Order", "**"):
        with pytest.raises(InvalidInput, match="expected '\\*' or an event type"):
            await case.bus.subscribe(bad, Recorder())


async def test_a_cancelled_subscriber_gets_nothing_more(case: BusCase) -> None:
    cancelled, staying = Recorder(), Recorder()
    subscription, _ = await asyncio.gather(
        case.bus.subscribe("*", cancelled), case.bus.subscribe("*", staying)
    )
    await subscription.cancel()
    event = stored()

    await case.bus.publish(event)

    await eventually(lambda: len(staying.calls) == 1)
    assert cancelled.calls == []


async def test_close_stops_every_task_and_refuses_further_use(case: BusCase) -> None:
    await asyncio.gather(
        case.bus.subscribe("*", Recorder()), case.bus.subscribe("OrderPaid", Recorder())
    )
    await case.bus.publish(stored())

    await within(case.bus.close(), timeout_s=10, what="the bus to close")

    left = [t.get_name() for t in asyncio.all_tasks() if " bus " in t.get_name() and not t.done()]
    assert left == []
    with pytest.raises(BusClosed, match="is closed; create a new one"):
        await case.bus.publish(stored(version=2))
    with pytest.raises(BusClosed):
        await case.bus.subscribe("*", Recorder())
