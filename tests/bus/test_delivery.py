"""What each bus promises when a handler fails or a subscriber goes away: the module docstrings' claims."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace

from tests.bus.conftest import RETRY, BusCase, Recorder, event_id, eventually, stored
from topics.envelope import encode
from workers.adapters.redis import RedisEventBus
from workers.bus import InProcessEventBus


async def test_in_process_is_at_most_once_a_failed_event_is_not_redelivered() -> None:
    bus = InProcessEventBus()
    got = Recorder(fail_first=1)
    await bus.subscribe("*", got)
    failed, sentinel = stored(version=1), stored(version=2)

    await bus.publish(failed)  # the failure is logged, not raised to the publisher
    await bus.publish(sentinel)

    assert got.calls == [failed, sentinel]
    await bus.close()


async def test_in_process_misses_what_was_published_before_subscribing() -> None:
    bus = InProcessEventBus()
    early, late = stored(version=1), stored(version=2)
    await bus.publish(early)
    got = Recorder()
    await bus.subscribe("*", got)

    await bus.publish(late)

    assert got.calls == [late]
    await bus.close()


async def test_a_handler_failing_twice_gets_the_event_again_and_succeeds(
    durable_case: BusCase,
) -> None:
    bus = durable_case.durable
    flaky = Recorder(fail_first=2)
    await bus.subscribe("*", flaky)
    event = stored()

    await bus.publish(event)

    await eventually(lambda: len(flaky.calls) == 3)
    sentinel = stored(version=2)
    await bus.publish(sentinel)
    await eventually(lambda: flaky.calls[-1:] == [sentinel])
    assert flaky.calls == [event, event, event, sentinel]  # redelivered, then done with
    assert await durable_case.dead_letters() == []


async def test_an_event_failing_every_attempt_is_dead_lettered_and_the_stream_moves_on(
    durable_case: BusCase,
) -> None:
    bus = durable_case.durable
    poisoned = stored(version=1)
    handler = Recorder(fail_first=RETRY.max_attempts)  # fails exactly max_attempts runs
    await bus.subscribe("*", handler)

    await bus.publish(poisoned)
    await eventually(lambda: len(handler.calls) == RETRY.max_attempts)
    sentinel = stored(version=2)
    await bus.publish(sentinel)

    await eventually(lambda: handler.calls[-1:] == [sentinel])
    assert handler.calls == [poisoned] * RETRY.max_attempts + [sentinel]
    letters = await durable_case.dead_letters()
    assert [event_id(raw) for raw, _ in letters] == [poisoned.id]
    assert "planned failure 3 of 3" in letters[0][1]


async def test_a_durable_subscriber_gets_what_was_published_while_it_was_away(
    durable_case: BusCase,
) -> None:
    bus = durable_case.durable
    before = Recorder()
    subscription = await bus.subscribe("*", before, durable="projector")
    first = stored(version=1)
    await bus.publish(first)
    await eventually(lambda: before.calls == [first])
    await subscription.cancel()

    missed = stored(version=2)
    await bus.publish(missed)
    after = Recorder()
    await bus.subscribe("*", after, durable="projector")

    await eventually(lambda: len(after.calls) == 1)
    assert after.calls == [missed]  # resumed after its last ack: not `first` again
    assert before.calls == [first]


async def test_a_durable_subscriber_of_a_restarted_process_resumes_where_it_stopped(
    durable_case: BusCase,
) -> None:
    first = stored(version=1)
    before = Recorder()
    await durable_case.durable.subscribe("*", before, durable="projector")
    await durable_case.durable.publish(first)
    await eventually(lambda: before.calls == [first])
    await durable_case.bus.close()  # the process stops

    restarted = durable_case.reopen()
    assert not isinstance(restarted, InProcessEventBus)
    try:
        missed = stored(version=2)
        await restarted.publish(missed)
        after = Recorder()
        await restarted.subscribe("*", after, durable="projector")

        await eventually(lambda: len(after.calls) == 1)
        assert after.calls == [missed]
    finally:
        await restarted.close()


async def test_an_event_whose_handler_was_interrupted_is_redelivered_to_the_successor(
    durable_case: BusCase,
) -> None:
    bus = durable_case.durable
    stuck = Recorder(block=asyncio.Event())  # never released: the handler hangs
    subscription = await bus.subscribe("*", stuck, durable="worker")
    event = stored()
    await bus.publish(event)
    await eventually(lambda: stuck.calls == [event])

    await subscription.cancel()  # interrupts the hanging handler before it acked
    successor = Recorder()
    await bus.subscribe("*", successor, durable="worker")

    await eventually(lambda: len(successor.calls) >= 1)
    # At least once: a redelivery of the first run may also reach it (NATS: ack_wait
    # expired while the hung handler was being stopped), but only ever this event.
    assert {e.id for e in successor.calls} == {event.id}
    assert successor.calls[0] == event


async def test_a_new_subscriber_starts_with_events_published_after_it_subscribed(
    durable_case: BusCase,
) -> None:
    bus = durable_case.durable
    early = Recorder()
    await bus.subscribe("*", early)
    before = stored(version=1)
    await bus.publish(before)
    await eventually(lambda: early.calls == [before])

    late = Recorder()
    await bus.subscribe("*", late, durable="late")
    after = stored(version=2)
    await bus.publish(after)

    await eventually(lambda: len(late.calls) == 1)
    assert late.calls == [after]


async def test_bytes_that_are_not_a_stored_event_are_dead_lettered_and_skipped(
    durable_case: BusCase,
) -> None:
    got = Recorder()
    await durable_case.durable.subscribe("*", got)
    junk = b"{not json"
    unversioned = encode(replace(stored(), version=None))

    await durable_case.inject(junk)
    await durable_case.inject(unversioned)
    sentinel = stored(version=2)
    await durable_case.durable.publish(sentinel)

    await eventually(lambda: len(got.calls) == 1)
    assert got.calls == [sentinel]  # neither reached the handler
    letters = await durable_case.dead_letters()
    assert [raw for raw, _ in letters] == [junk, unversioned]
    assert "not valid JSON" in letters[0][1]
    assert "has no version" in letters[1][1]


async def test_a_redis_entry_whose_type_is_not_utf8_neither_stops_nor_reaches_a_subscriber(
    make: Callable[[str], Awaitable[BusCase]],
) -> None:
    """A broken producer's entry with a type field that is not UTF-8: a subscriber of one type
    acknowledges it as not its own, one of every type dead-letters its bytes; both go on to
    the next entry (a strict decode failed every read, and each reclaim took it up again)."""
    case = await make("redis")
    bus = case.durable
    assert isinstance(bus, RedisEventBus)
    every, placed = Recorder(), Recorder()
    await bus.subscribe("*", every, durable="every")
    await bus.subscribe("OrderPlaced", placed, durable="placed")
    junk = b"\xff\xfe not an event"
    await bus.redis.xadd(bus.stream, {"type": b"\xff\xfe", "event": junk})
    sentinel = stored(version=2)
    await bus.publish(sentinel)

    await eventually(lambda: every.calls == [sentinel] and placed.calls == [sentinel])
    letters = await case.dead_letters()
    assert [raw for raw, _ in letters] == [junk]  # once: the "*" subscriber's
