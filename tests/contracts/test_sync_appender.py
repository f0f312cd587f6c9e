"""Sync mode's appender (``SyncAppender``): one contract, on the runtime built on the memory
adapters and on the real stack (MongoDB behind a proxy that can drop it, Kafka, Redis).

An accepted event is stored at the next version and then published; a retry with the event
id it was stored under gets the stored event back, marked a duplicate, and stores nothing
more. A refusal (the state's rules, a stale expected version, bad input, a domain that is not sync)
raises and stores and publishes nothing; so does a store that does not answer
(StoreUnavailable, retriable). Of concurrent appends with one expected version, one is stored.
"""

from __future__ import annotations

import asyncio

import pytest

from topics.envelope import Metadata
from topics.errors import (
    InvalidEnvelope,
    InvalidEventData,
    StoreUnavailable,
    UnknownEventType,
    WrongExpectedVersion,
)
from workers.cqrs import StateRejected
from workers.examples.domains.account import ACCOUNT
from workers.examples.domains.order import ORDER

from .synced import Synced

META = Metadata(client_id="t")
DEPOSIT = "5f0c8a2e-3b1d-4c7a-9e6f-0a1b2c3d4e5f"


async def test_an_event_is_stored_at_the_next_version_then_published(s: Synced) -> None:
    opened = await s.sync.append(ACCOUNT, "a1", "AccountOpened", {"owner": "ann"}, META)
    deposited = await s.sync.append(ACCOUNT, "a1", "MoneyDeposited", {"amount": 70}, META)
    assert (opened.event.version, deposited.event.version) == (1, 2)
    assert (opened.published, opened.duplicate) == (True, False)
    assert (deposited.published, deposited.duplicate) == (True, False)
    assert deposited.event.metadata == META
    assert await s.stored("a1") == [opened.event, deposited.event]
    assert await s.published() == [opened.event.id, deposited.event.id]


async def test_a_retry_under_a_stored_event_id_is_answered_the_stored_event(s: Synced) -> None:
    await s.sync.append(ACCOUNT, "a2", "AccountOpened", {"owner": "bo"}, META)
    first = await s.sync.append(
        ACCOUNT, "a2", "MoneyDeposited", {"amount": 5}, META, event_id=DEPOSIT
    )
    again = await s.sync.append(
        ACCOUNT, "a2", "MoneyDeposited", {"amount": 5}, META, event_id=DEPOSIT
    )
    assert first.event.id == DEPOSIT and not first.duplicate
    assert again.duplicate and again.event == first.event
    assert [e.version for e in await s.stored("a2")] == [1, 2]  # stored once


async def test_what_the_state_refuses_raises_and_stores_nothing(s: Synced) -> None:
    with pytest.raises(StateRejected, match="not been opened"):
        await s.sync.append(ACCOUNT, "a3", "MoneyDeposited", {"amount": 5}, META)
    opened = await s.sync.append(ACCOUNT, "a3", "AccountOpened", {"owner": "cy"}, META)
    with pytest.raises(StateRejected, match="overdraw"):
        await s.sync.append(ACCOUNT, "a3", "MoneyWithdrawn", {"amount": 5}, META)
    assert await s.stored("a3") == [opened.event]
    assert await s.published() == [opened.event.id]


async def test_bad_input_raises_before_anything_is_read_or_stored(s: Synced) -> None:
    with pytest.raises(UnknownEventType):
        await s.sync.append(ACCOUNT, "a4", "AccountRenamed", {"owner": "dee"}, META)
    with pytest.raises(InvalidEventData):
        await s.sync.append(ACCOUNT, "a4", "AccountOpened", {"owner": 7}, META)
    with pytest.raises(InvalidEnvelope, match="UUID"):
        await s.sync.append(
            ACCOUNT, "a4", "AccountOpened", {"owner": "dee"}, META, event_id="deposit-1"
        )
    with pytest.raises(ValueError, match="sync"):
        await s.sync.append(ORDER, "o4", "OrderPlaced", {}, META)  # an async domain
    assert await s.stored("a4") == []
    assert await s.published() == []


async def test_a_store_that_does_not_answer_raises_and_nothing_is_stored(s: Synced) -> None:
    opened = await s.sync.append(ACCOUNT, "a5", "AccountOpened", {"owner": "eve"}, META)
    s.store_down()
    try:
        with pytest.raises(StoreUnavailable) as caught:
            await s.sync.append(ACCOUNT, "a5", "MoneyDeposited", {"amount": 5}, META)
        assert caught.value.retriable
    finally:
        s.store_up()
    assert await s.stored("a5") == [opened.event]
    assert await s.published() == [opened.event.id]
    again = await s.sync.append(ACCOUNT, "a5", "MoneyDeposited", {"amount": 5}, META)
    assert again.event.version == 2 and again.published  # it answers again once back


async def test_an_expected_version_is_the_version_the_event_follows(s: Synced) -> None:
    opened = await s.sync.append(
        ACCOUNT, "a6", "AccountOpened", {"owner": "fay"}, META, expected_version=0
    )
    assert (opened.event.version, opened.event.expected_version) == (1, 0)
    deposited = await s.sync.append(
        ACCOUNT, "a6", "MoneyDeposited", {"amount": 5}, META, expected_version=1
    )
    assert deposited.event.version == 2
    for expected, current in ((1, 2), (0, 2), (7, 2)):
        with pytest.raises(WrongExpectedVersion) as caught:
            await s.sync.append(
                ACCOUNT, "a6", "MoneyDeposited", {"amount": 5}, META, expected_version=expected
            )
        assert (caught.value.expected, caught.value.current) == (expected, current)
        assert not caught.value.retriable and "read it again and decide again" in str(caught.value)
    with pytest.raises(WrongExpectedVersion, match="a7 does not exist yet"):
        await s.sync.append(
            ACCOUNT, "a7", "AccountOpened", {"owner": "g"}, META, expected_version=1
        )
    assert await s.stored("a6") == [opened.event, deposited.event]
    assert await s.stored("a7") == []
    assert await s.published() == [opened.event.id, deposited.event.id]


async def test_of_concurrent_appends_with_one_expected_version_one_is_stored(s: Synced) -> None:
    """The expectation is checked in the optimistic write: each loads version 1, one insert of
    version 2 wins the unique index, and every other reloads and finds version 2."""
    await s.sync.append(ACCOUNT, "a8", "AccountOpened", {"owner": "hal"}, META)
    answers = await asyncio.gather(
        *(
            s.sync.append(
                ACCOUNT, "a8", "MoneyDeposited", {"amount": i + 1}, META, expected_version=1
            )
            for i in range(12)
        ),
        return_exceptions=True,
    )
    stored = [a for a in answers if not isinstance(a, BaseException)]
    refused = [a for a in answers if isinstance(a, WrongExpectedVersion)]
    assert len(stored) == 1 and len(refused) == 11, answers
    assert {(e.expected, e.current) for e in refused} == {(1, 2)}
    assert [e.version for e in await s.stored("a8")] == [1, 2]
