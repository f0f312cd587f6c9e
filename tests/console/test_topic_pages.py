"""The topic browser pages one partition newest first by a ``before_offset`` cursor, and
answers bad parameters with a console 400 page."""

from __future__ import annotations

import html
import re
import uuid

from tests.console.http_calls import fetch, placed_and_stored
from tests.fleet import FleetProcess


def rows_of(page: str) -> list[tuple[int, int, str]]:
    """(partition, offset, key) of each record row, in the order shown."""
    records = page[page.index('id="records"') :]
    found = re.findall(r"<tr><td>(\d+)</td><td>(\d+)</td><td>[^<]*</td><td>([^<]*)</td>", records)
    return [(int(p), int(o), k) for p, o, k in found]


def older_link(page: str, partition: int) -> str | None:
    found = re.search(rf'<a class="older" href="([^"]+)">older in partition {partition}</a>', page)
    return None if found is None else html.unescape(found.group(1))


async def test_a_partition_pages_newest_first_by_offset_down_to_its_first_record(
    console_fleet: FleetProcess,
) -> None:
    order = f"page-{uuid.uuid4().hex[:6]}"
    await placed_and_stored(console_fleet, order, paid=True)
    stored = f"/console/topics/{console_fleet.prefix}events.stored"
    status, _, page = await fetch(console_fleet, stored)
    assert status == 200
    mine = [(p, o) for p, o, k in rows_of(page) if k == f"order:{order}"]
    assert len(mine) == 2, mine  # both events, newest first
    (partition, paid), (same, placed) = mine
    assert partition == same and paid > placed
    # From just above the paid event, one record a page, older links down to the placed one.
    url: str | None = f"{stored}?partition={partition}&before_offset={paid + 1}&limit=1"
    offsets: list[int] = []
    for _ in range(paid - placed + 1):  # bounded: one page per offset between them
        assert url is not None
        status, _, page = await fetch(console_fleet, url)
        assert status == 200
        [(shown_partition, offset, _)] = rows_of(page)
        assert shown_partition == partition
        offsets.append(offset)
        url = older_link(page, partition)
    assert offsets == list(range(paid, placed - 1, -1))  # every offset once, newest first
    status, _, page = await fetch(console_fleet, f"{stored}?partition={partition}&before_offset=0")
    assert status == 200 and rows_of(page) == [] and older_link(page, partition) is None
    assert "newest of this partition" in page


async def test_bad_topic_page_parameters_are_console_400_pages(
    console_fleet: FleetProcess,
) -> None:
    stored = f"/console/topics/{console_fleet.prefix}events.stored"
    for query in (
        "before_offset=3",  # a cursor pages one partition
        "partition=999",
        "partition=0&before_offset=-1",
        "partition=0&before_offset=1e3",
        "limit=0",
        "limit=501",
        "limit=abc",
        "partition=<script>alert(1)</script>",
    ):
        status, content_type, page = await fetch(console_fleet, f"{stored}?{query}")
        assert (status, content_type) == (400, "text/html"), (query, status, page[:300])
        assert 'id="error"' in page and "<script>alert" not in page
