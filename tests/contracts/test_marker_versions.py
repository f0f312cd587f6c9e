"""The marker's count of versions (issue 47), on the in-memory twin and on real Redis.

A mark counts the version of its event: from the store's head (or 0 for a new aggregate), one
more per event marked after it. An expected version is checked against that count before the
type, in the same atomic call; a mark that counts nothing lets the event through unchecked
(the store judges it). The count is the marker's opinion: ``tests/e2e/test_expected_version*``
show that the store's judgement, not the count, decides what is stored.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

from tests.contracts.conftest import Side
from topics.envelope import NEW_AGGREGATE
from workers.ports import Head, MarkRequest, MarkResult

CART = ["CartOpened", "ItemAdded"]


def request(
    key: str,
    *,
    expected: int | None,
    fallback: str = "?",
    event_type: str = "ItemAdded",
    allowed: Sequence[str] = CART,
) -> MarkRequest:
    return MarkRequest(
        key, event_type, str(uuid.uuid4()), list(allowed), fallback=fallback,
        expected_version=expected,
    )  # fmt: skip


def seen(result: MarkResult) -> tuple[str, int | None]:
    return result.status, result.version


async def test_a_new_aggregate_counts_from_zero_and_each_mark_adds_one(side: Side) -> None:
    first = request("cart:n1", expected=0, fallback=NEW_AGGREGATE, event_type="CartOpened",
                    allowed=["none"])  # fmt: skip
    assert seen(await side.marker.check_and_mark(first)) == ("marked", 0)
    again = await side.marker.check_and_mark(request("cart:n1", expected=0))
    assert seen(again) == ("wrong_version", 1)
    assert again.current == "CartOpened" and again.after == first.event_id
    assert await side.marker.peek("cart:n1") == ("CartOpened", first.event_id)  # unchanged
    second = request("cart:n1", expected=1)
    assert seen(await side.marker.check_and_mark(second)) == ("marked", 1)
    unchecked = await side.marker.check_and_mark(request("cart:n1", expected=None))
    assert seen(unchecked) == ("marked", 2)  # no expectation: counted all the same
    assert seen(await side.marker.check_and_mark(request("cart:n1", expected=3))) == ("marked", 3)


async def test_the_store_head_sets_the_count(side: Side) -> None:
    head = "ItemAdded|h1|4"
    assert seen(await side.marker.check_and_mark(request("cart:h1", expected=4, fallback=head))) == (
        "marked", 4,
    )  # fmt: skip
    stale = await side.marker.check_and_mark(request("cart:h2", expected=3, fallback=head))
    assert seen(stale) == ("wrong_version", 4) and (stale.current, stale.after) == (
        "ItemAdded",
        "h1",
    )
    assert await side.marker.peek("cart:h2") is None  # refused: nothing marked
    ahead = await side.marker.check_and_mark(request("cart:h2", expected=5, fallback=head))
    assert seen(ahead) == ("wrong_version", 4)


async def test_the_expectation_is_checked_before_the_type(side: Side) -> None:
    def shipped(expected: int) -> MarkRequest:
        return request("order:t1", expected=expected, fallback="OrderPlaced|h1|1",
                       event_type="OrderShipped", allowed=["OrderPaid"])  # fmt: skip

    assert seen(await side.marker.check_and_mark(shipped(7))) == ("wrong_version", 1)
    right = await side.marker.check_and_mark(shipped(1))
    assert seen(right) == ("rejected", 1) and right.current == "OrderPlaced"


async def test_a_mark_that_counts_nothing_lets_an_expectation_through_for_the_store(
    side: Side,
) -> None:
    """A mark written before versions were counted (or a fallback without one): the event is
    marked unchecked, and the mark after it counts nothing either."""
    await side.plant("cart:u1", f"ItemAdded|{uuid.uuid4()}|{NEW_AGGREGATE}")
    assert seen(await side.marker.check_and_mark(request("cart:u1", expected=5))) == (
        "marked",
        None,
    )
    assert seen(await side.marker.check_and_mark(request("cart:u1", expected=9))) == (
        "marked",
        None,
    )
    await side.plant("cart:u2", f"ItemAdded|{uuid.uuid4()}|{NEW_AGGREGATE}|x1")  # not a count
    assert seen(await side.marker.check_and_mark(request("cart:u2", expected=2))) == (
        "marked",
        None,
    )
    old_head = await side.marker.check_and_mark(
        request("cart:u3", expected=8, fallback="ItemAdded|h")
    )
    assert seen(old_head) == ("marked", None)


async def test_a_planted_count_is_what_the_marker_believes(side: Side) -> None:
    """A count ahead of the store (a phantom's, a refused event's) refuses at the door; the
    command side asks the store before it answers so (``RefusalCheck``)."""
    await side.plant("cart:p1", f"ItemAdded|{uuid.uuid4()}|{NEW_AGGREGATE}|6")
    assert seen(await side.marker.check_and_mark(request("cart:p1", expected=5))) == (
        "wrong_version", 6,
    )  # fmt: skip
    assert seen(await side.marker.check_and_mark(request("cart:p1", expected=6))) == ("marked", 6)


async def test_restore_and_repair_keep_the_count(side: Side) -> None:
    opened = request("cart:r1", expected=0, fallback=NEW_AGGREGATE, event_type="CartOpened",
                     allowed=["none"])  # fmt: skip
    await side.marker.check_and_mark(opened)
    added = request("cart:r1", expected=1)
    marked = await side.marker.check_and_mark(added)
    assert seen(marked) == ("marked", 1)
    await side.marker.restore(added, marked)  # its produce failed: nothing was sent
    assert seen(await side.marker.check_and_mark(request("cart:r1", expected=2))) == (
        "wrong_version", 1,
    )  # fmt: skip
    refused = request("cart:r1", expected=1)
    assert seen(await side.marker.check_and_mark(refused)) == ("marked", 1)
    await side.marker.repair("cart:r1", refused.event_id, Head(7, "h7", "ItemAdded"))
    await side.settled()
    assert await side.marker.peek("cart:r1") == ("ItemAdded", "h7")
    assert seen(await side.marker.check_and_mark(request("cart:r1", expected=6))) == (
        "wrong_version", 7,
    )  # fmt: skip
    assert seen(await side.marker.check_and_mark(request("cart:r1", expected=7))) == ("marked", 7)


async def test_the_filter_counts_a_certainly_new_aggregate_as_zero(side: Side) -> None:
    await side.marker.mark_filter_ready()

    def opened(key: str, expected: int) -> MarkRequest:
        return request(key, expected=expected, event_type="CartOpened", allowed=["none"])

    assert seen(await side.marker.check_and_mark(opened("cart:f1", 0))) == ("marked", 0)
    assert seen(await side.marker.check_and_mark(opened("cart:f2", 3))) == ("wrong_version", 0)


async def test_of_concurrent_requests_with_one_expectation_exactly_one_is_marked(
    side: Side,
) -> None:
    await side.plant("cart:c1", f"ItemAdded|{uuid.uuid4()}|{NEW_AGGREGATE}|3")
    results = await asyncio.gather(
        *(side.marker.check_and_mark(request("cart:c1", expected=3)) for _ in range(32))
    )
    assert sorted(seen(r) for r in results) == [("marked", 3)] + [("wrong_version", 4)] * 31
