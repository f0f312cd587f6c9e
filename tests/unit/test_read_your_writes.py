"""The read-your-writes waiter on the memory twins: a refusal is final, a bound is kept."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from topics.envelope import derived_event_id, new_event
from workers.adapters.memory.events import MemoryEventStore
from workers.adapters.memory.rejections import MemoryRejections
from workers.examples.domains import default_domains
from workers.ports import Rejection
from workers.runtime.queries import failure
from workers.runtime.read_your_writes import NotYetStored, ReadAfter, RefusedAtStore, WriteWaiter

REF = ("order", "o-1")


def waiter() -> tuple[WriteWaiter, MemoryEventStore, MemoryRejections]:
    events, rejections = MemoryEventStore(), MemoryRejections()
    return (
        WriteWaiter(domains=default_domains(), events=events, rejections=rejections),
        events,
        rejections,
    )


async def test_a_refused_command_is_answered_409_at_once_not_after_the_bound() -> None:
    wait, _, rejections = waiter()
    event_id = derived_event_id("order", "o-1", "c-7")
    await rejections.record([Rejection(
        event_id, "order", "o-1", "OrderShipped", "transition_rejected_at_store",
        "OrderShipped may not follow OrderPlaced.", "c-7", datetime.now(UTC),
    )])  # fmt: skip
    with pytest.raises(RefusedAtStore) as refused:
        await wait.stored(REF, ReadAfter(None, "c-7", wait_ms=30_000))
    answer = failure(refused.value)
    assert answer.status == 409
    assert answer.body["error"] == "refused"
    assert answer.body["reason"] == "transition_rejected_at_store"
    assert answer.body["event_id"] == event_id and answer.body["command_id"] == "c-7"


async def test_a_stored_command_gives_its_version_and_a_view_behind_it_is_504() -> None:
    wait, events, _ = waiter()
    placed = new_event(
        "order", "o-1", "OrderPlaced", {"items": []}, version=1,
        id=derived_event_id("order", "o-1", "c-1"),
    )  # fmt: skip
    await events.append([placed])
    await wait.stored(REF, ReadAfter(None, "c-1", wait_ms=0))  # stored: returns

    async def view_version() -> int:
        return 0  # the projection has folded nothing yet

    with pytest.raises(NotYetStored) as behind:
        await wait.in_view(REF, ReadAfter(None, "c-1", wait_ms=20), view_version)
    answer = failure(behind.value)
    assert answer.status == 504 and answer.body["error"] == "not_yet_stored"
    assert answer.body["stored_version"] == 0 and answer.body["wanted_version"] == 1
    assert "the projection is behind" in answer.body["message"]


def test_parse_asks_for_nothing_without_its_parameters() -> None:
    assert ReadAfter.parse({"limit": "5"}) is None
    assert ReadAfter.parse({"min_version": "3"}) == ReadAfter(3, None, 1000)
