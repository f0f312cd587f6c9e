"""The Rejections contract: refused events by id, the first record kept; a verdict replaces a
dead-lettered copy's fate."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from topics.errors import StoreUnavailable
from workers.ports import Rejection

from .conftest import Stores

AT = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def refused(event_id: str, reason: str = "transition_rejected_at_store") -> Rejection:
    return Rejection(
        event_id, "order", "o1", "OrderShipped", reason, "OrderShipped cannot follow OrderPlaced.",
        "cmd-1", AT,
    )  # fmt: skip


async def test_rejections_are_found_by_id_and_the_first_one_is_kept(stores: Stores) -> None:
    rejections = stores.rejections
    await rejections.record([refused("e1"), refused("e2", "invalid_data")])
    await rejections.record([refused("e1", "invalid_data")])  # recorded again: the first stays
    found = await rejections.find(["e1", "e2", "e3"])
    assert set(found) == {"e1", "e2"}
    # Times to the millisecond in UTC, as a document store keeps them.
    assert found["e1"] == Rejection(
        "e1", "order", "o1", "OrderShipped", "transition_rejected_at_store",
        "OrderShipped cannot follow OrderPlaced.", "cmd-1", AT.replace(microsecond=123000),
    )  # fmt: skip
    assert found["e2"].reason == "invalid_data"


async def test_a_wrong_expected_version_keeps_the_version_the_store_found(
    stores: Stores,
) -> None:
    message = "cart c1 is at version 4, not at the expected 3 (checked at the store)"
    stale = Rejection(
        "e1", "cart", "c1", "ItemAdded", "wrong_expected_version", message, "cmd-1", AT,
        current_version=4,
    )  # fmt: skip
    await stores.rejections.record([stale, refused("e2")])
    found = await stores.rejections.find(["e1", "e2"])
    assert found["e1"] == Rejection(
        "e1", "cart", "c1", "ItemAdded", "wrong_expected_version", message, "cmd-1",
        AT.replace(microsecond=123000), current_version=4,
    )  # fmt: skip
    assert found["e2"].current_version is None  # only this verdict names a version
    await stores.rejections.record([refused("e1", "undecodable")])  # a verdict stays
    assert (await stores.rejections.find(["e1"]))["e1"].current_version == 4


async def test_a_verdict_replaces_a_dead_lettered_copys_fate_and_nothing_replaces_a_verdict(
    stores: Stores,
) -> None:
    rejections = stores.rejections
    await rejections.record([refused("e1", "undecodable"), refused("e2", "oversized")])
    await rejections.record([refused("e1", "unknown_event_type")])  # a fate: the first stays
    assert (await rejections.find(["e1"]))["e1"].reason == "undecodable"
    await rejections.record([refused("e1"), refused("e3", "invalid_data")])  # the store judged
    await rejections.record([refused("e1", "invalid_data"), refused("e3", "undecodable")])
    found = await rejections.find(["e1", "e2", "e3"])
    assert {i: r.reason for i, r in found.items()} == {
        "e1": "transition_rejected_at_store", "e2": "oversized", "e3": "invalid_data",
    }  # fmt: skip


async def test_nothing_asked_needs_no_round_trip_even_when_down(stores: Stores) -> None:
    async with stores.outage() as down:
        await down.rejections.record([])
        assert await down.rejections.find([]) == {}
        with pytest.raises(StoreUnavailable):
            await down.rejections.find(["e1"])
        with pytest.raises(StoreUnavailable):
            await down.rejections.record([refused("e1")])
