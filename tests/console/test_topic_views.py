"""The topics in the manner of Kafka UI, over HTTP on the package's fleet: the list with each
topic's settings, records and readers; a topic's configs and partition offsets; records
filtered by key, header, time and text in bounded scans that say when the bound cut them; the
tail that follows new records by reloading itself; the viewer's zone; bad input as console 400
pages naming the parameter."""

from __future__ import annotations

import html
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import aiohttp

from tests.console.http_calls import fetch, placed_and_stored
from tests.fleet import FleetProcess
from tests.waiting import wait_for


def row_of(page: str, table: str, first_cell: str) -> list[str]:
    """The cells (HTML) of the row of table ``table`` whose first cell holds ``first_cell``."""
    body = page[page.index(f'id="{table}"') :]
    body = body[: body.index("</table>")]
    for row in re.findall(r"<tr>(.*?)</tr>", body):
        cells = re.findall(r"<td>(.*?)</td>", row)
        if cells and first_cell in cells[0]:
            return cells
    raise AssertionError(f"no row for {first_cell} in {table}: {body[:2000]}")


def record_rows(page: str, table: str = "records") -> list[tuple[int, int, str, str]]:
    """(partition, offset, timestamp cell, key) of each record row, in the order shown."""
    body = page[page.index(f'id="{table}"') :]
    found = re.findall(r"<tr><td>(\d+)</td><td>(\d+)</td><td>(.*?)</td><td>([^<]*)</td>", body)
    return [(int(p), int(o), t, html.unescape(k)) for p, o, t, k in found]


async def test_the_topics_list_shows_partitions_replication_retention_records_and_readers(
    console_fleet: FleetProcess,
) -> None:
    await placed_and_stored(console_fleet, f"list-{uuid.uuid4().hex[:6]}")
    p = console_fleet.prefix
    status, kind, page = await fetch(console_fleet, "/console/topics")
    assert (status, kind) == (200, "text/html"), page[:500]
    stored = row_of(page, "topics", f"{p}events.stored<")
    _, partitions, replication, in_sync, retention, cleanup, records, readers, links = stored
    assert (partitions, replication, in_sync) == ("4", "1", "1")
    assert (retention, cleanup) == ("forever", "delete")
    assert int(records.replace(",", "")) >= 1
    assert {"snapshotter", "forwarder", "pm"} <= set(readers.split(", ")), readers
    assert "/settings" in links and "/tail" in links
    events = row_of(page, "topics", f"{p}events<")
    assert events[4] == "7 d" and events[7] == "appender"
    assert row_of(page, "topics", f"{p}events.dlq<")[4] == "30 d"
    changelog = row_of(page, "topics", f"{p}snapshot-rules.changelog<")
    assert changelog[5] == "compact" and "snapshotter" in changelog[7]
    assert row_of(page, "topics", f"{p}commands<")[7] == "commands"


async def test_a_topics_settings_page_shows_its_configs_and_partition_offsets(
    console_fleet: FleetProcess,
) -> None:
    await placed_and_stored(console_fleet, f"set-{uuid.uuid4().hex[:6]}")
    stored = f"{console_fleet.prefix}events.stored"
    status, _, page = await fetch(console_fleet, f"/console/topics/{stored}/settings")
    assert status == 200, page[:500]
    retention = row_of(page, "configs", "retention.ms")
    assert retention[1] == "<code>-1</code>" and "catalog: -1" in retention[3]
    assert 'class="good"' in retention[3]  # as the fleet's catalog asks
    assert row_of(page, "configs", "cleanup.policy")[1] == "<code>delete</code>"
    offsets = [row_of(page, "partitions", f"{n}") for n in range(4)]
    assert all(int(end) >= int(start) for _, _, _, _, start, end, _ in offsets)
    assert sum(int(kept) for *_, kept in offsets) >= 1
    status, _, page = await fetch(console_fleet, "/console/topics/elsewhere/settings")
    assert status == 404 and 'id="error"' in page


async def test_records_are_filtered_by_key_header_text_and_time(
    console_fleet: FleetProcess,
) -> None:
    run = uuid.uuid4().hex[:6]
    first, second = f"flt{run}-a", f"flt{run}-b"
    await placed_and_stored(console_fleet, first, paid=True)
    await placed_and_stored(console_fleet, second)
    topic = f"/console/topics/{console_fleet.prefix}events.stored"

    async def keys(query: str) -> list[str]:
        status, _, page = await fetch(console_fleet, f"{topic}?{query}")
        assert status == 200, (query, page[:800])
        assert 'id="filters"' in page
        return [k for *_, k in record_rows(page)]

    assert await keys(f"key=order:{first}") == [f"order:{first}"] * 2
    assert sorted(await keys(f"key=order:flt{run}&key_match=prefix")) == sorted(
        [f"order:{first}"] * 2 + [f"order:{second}"]
    )
    assert await keys(f"key=order:flt{run}") == []  # exact by default
    paid = await keys(f"key=order:flt{run}&key_match=prefix&header=event_type%3DOrderPaid")
    assert paid == [f"order:{first}"]
    assert await keys(f"q=FLT{run}-B") == [f"order:{second}"]  # text, any case
    # The time window: the second order's record alone, by its own timestamp.
    _, _, page = await fetch(console_fleet, f"{topic}?key=order:{second}")
    [(_, _, stamp, _)] = record_rows(page)
    moment = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%fZ").replace(tzinfo=UTC)
    at = quote(moment.isoformat().replace("+00:00", "Z"))
    window = f"key=order:flt{run}&key_match=prefix"
    assert await keys(f"{window}&since={at}&until={at}") == [f"order:{second}"]
    later = quote((moment + timedelta(milliseconds=1)).isoformat())
    assert f"order:{second}" not in await keys(f"{window}&since={later}")
    assert f"order:{second}" in await keys(f"{window}&until={at}")


async def test_a_bounded_scan_says_it_was_cut_and_continues_to_older_records(
    console_fleet: FleetProcess,
) -> None:
    order = f"cut-{uuid.uuid4().hex[:6]}"
    await placed_and_stored(console_fleet, order, paid=True)
    topic = f"/console/topics/{console_fleet.prefix}events.stored"
    # One record a partition a request: the paid event first, the placed one on the page after.
    url: str | None = f"{topic}?key=order:{order}&scan=4"
    seen: list[int] = []
    for _ in range(10_000):  # bounded: the partition has fewer records than this
        assert url is not None
        status, _, page = await fetch(console_fleet, url)
        assert status == 200, page[:500]
        seen += [offset for _, offset, _, key in record_rows(page) if key == f"order:{order}"]
        assert "at most 4 read a request" in page
        found = re.search(r'<a id="continue" href="([^"]+)"', page)
        if found is None:
            assert 'id="whole"' in page and 'id="cut"' not in page
            break
        assert 'id="cut"' in page
        url = html.unescape(found.group(1))
    assert len(seen) == 2 and seen[0] > seen[1], seen  # both, newest first, each once


async def test_the_tail_shows_records_that_arrive_and_stops_following_after_its_time(
    console_fleet: FleetProcess,
) -> None:
    stored = f"/console/topics/{console_fleet.prefix}events.stored/tail"
    status, _, location = await fetch(console_fleet, stored, follow=False)
    assert status == 303 and "from=" in location and "started=" in location, location
    tail = html.unescape(location)
    status, _, page = await fetch(console_fleet, tail)
    assert status == 200 and 'http-equiv="refresh" content="2"' in page
    assert 'id="following"' in page
    order = f"tail-{uuid.uuid4().hex[:6]}"
    await placed_and_stored(console_fleet, order)

    async def shown() -> bool:
        _, _, page = await fetch(console_fleet, tail)
        return f"order:{order}" in [k for *_, k in record_rows(page, "tail")]

    await wait_for(shown, timeout_s=30, what="the new record on the tail")
    _, _, page = await fetch(console_fleet, tail + f"&key=order:{order}x")
    assert record_rows(page, "tail") == []  # the tail takes the filters too
    old = re.sub(r"started=\d+", f"started={int(time.time()) - 601}", tail)
    status, _, page = await fetch(console_fleet, old)
    assert status == 200 and 'http-equiv="refresh"' not in page
    assert 'id="stopped"' in page and 'id="follow-again"' in page


async def test_times_show_in_utc_beside_the_zone_the_viewer_picked(
    console_fleet: FleetProcess,
) -> None:
    order = f"tz-{uuid.uuid4().hex[:6]}"
    await placed_and_stored(console_fleet, order)
    topic = f"/console/topics/{console_fleet.prefix}events.stored?key=order:{order}"
    async with aiohttp.ClientSession(headers=console_fleet.auth_headers) as session:
        zone = f"/console/zone?tz=Asia/Tokyo&next={quote(topic, safe='')}"
        async with session.get(console_fleet.url + zone, allow_redirects=False) as response:
            assert response.status == 303 and response.headers["Location"] == topic
            cookie = response.headers["Set-Cookie"]
            assert cookie.startswith('eventfleet_tz="Asia/Tokyo";') and "Path=/console" in cookie
        picked = {"Cookie": 'eventfleet_tz="Asia/Tokyo"'}  # as the browser sends it back
        async with session.get(console_fleet.url + topic, headers=picked) as response:
            page = await response.text()
    [(_, _, stamp, _)] = record_rows(page)
    utc, local = re.findall(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", stamp)
    assert stamp.endswith(" JST</span>") and utc != local
    shift = datetime.fromisoformat(local) - datetime.fromisoformat(utc)
    assert shift.total_seconds() == 9 * 3600
    status, _, page = await fetch(console_fleet, "/console/zone?tz=Mars/Olympus")
    assert status == 400 and "tz=" in page
    status, _, location = await fetch(console_fleet, "/console/zone?tz=UTC&next=//x", follow=False)
    assert status == 303 and location == "/console/topics"  # no open redirect


async def test_bad_filter_values_are_console_400_pages_naming_the_parameter(
    console_fleet: FleetProcess,
) -> None:
    stored = f"/console/topics/{console_fleet.prefix}events.stored"
    for query, named in (
        ("key=a&key_match=fuzzy", "key_match="),
        ("header=novalue", "header="),
        ("header=%3Dvalue", "header="),
        ("since=yesterday", "since"),
        ("until=2026-01-01T00:00:00", "until"),
        ("since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z", "since="),
        ("key=a&before=abc", "before="),
        ("key=a&before=0:1,x", "before="),
        ("key=a&partition=x", "partition="),
        ("key=a&partition=99", "no partition 99"),
        ("key=a&scan=0", "scan="),
        ("key=a&scan=5001", "scan="),
        ("key=a&limit=501", "limit="),
        ("q=" + "x" * 201, "q is 201 characters"),
        ("key=<script>alert(1)</script>&key_match=<b>", "key_match="),
    ):
        status, kind, page = await fetch(console_fleet, f"{stored}?{query}")
        assert (status, kind) == (400, "text/html"), (query, status, page[:300])
        message = page[page.index('id="error"') :]
        assert html.escape(named, quote=True) in message, (query, message[:300])
        assert "<script>alert" not in page
    for query, named in (("from=zz", "from="), ("from=0:1&started=abc", "started=")):
        status, _, page = await fetch(console_fleet, f"{stored}/tail?{query}")
        assert status == 400 and named in page, (query, page[:300])
