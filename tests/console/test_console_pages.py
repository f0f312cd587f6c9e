"""Console pages over HTTP: errors as console pages with the API's statuses, natural order and
paging of aggregates, and the groups & partitions page."""

from __future__ import annotations

import re
import uuid

from tests.console.conftest import dead_letter_of, poison_order
from tests.console.http_calls import fetch, place, placed_and_stored
from tests.fleet import FleetProcess, order_items
from tests.tokens import TESTER
from tests.waiting import wait_for
from topics.envelope import new_event
from workers.adapters.mongo import MongoEventStore, connect, database


async def stored_directly(fleet: FleetProcess, orders: list[str]) -> None:
    """An OrderPlaced at version 1 of each order, written to the fleet's store itself: the
    console reads the store, and 500 writes through the API took most of a minute of a loaded
    run (the API's answers under load are tested elsewhere)."""
    client = connect(fleet.env["EVENTFLEET_MONGO_URL"], timeout_ms=30_000)
    try:
        store = MongoEventStore(database(client, fleet.env["EVENTFLEET_MONGO_DATABASE"]))
        placed = {"items": order_items()}
        await store.append(
            [new_event("order", o, "OrderPlaced", placed, version=1) for o in orders]
        )
    finally:
        await client.close()


async def test_the_root_leads_to_the_console(console_fleet: FleetProcess) -> None:
    status, _, location = await fetch(console_fleet, "/", follow=False)
    assert (status, location) == (302, "/console")


async def test_console_errors_are_console_pages_with_the_apis_status(
    console_fleet: FleetProcess,
) -> None:
    order = f"page-{uuid.uuid4().hex[:6]}"
    await place(console_fleet, order)
    status, _ = await console_fleet.get(
        f"/v1/order/{order}/state?min_version=1&wait_ms=20000", token=console_fleet.token()
    )
    assert status == 200
    for path, named in [
        ("/console/aggregates/order/nope", "order nope has no events"),
        (f"/console/aggregates/order/{order}?at_version=99", "version"),
        ("/console/nope", "no page &#x27;/console/nope&#x27;"),
        ("/console/types/nope", "&#x27;nope&#x27;"),
    ]:
        status, kind, body = await fetch(console_fleet, path)
        assert (status, kind) == (404, "text/html"), (path, body)
        assert 'id="error"' in body and named in body, (path, body)
    status, _, body = await fetch(console_fleet, f"/console/aggregates/order/{order}?at_version=1")
    assert status == 200 and "Replayed state at version 1" in body
    status, _, body = await fetch(console_fleet, "/console/types/order?page=0")
    assert status == 400 and 'id="error"' in body
    # A name no aggregate can have: the console's own 400 page, not the API's JSON.
    for path in ("/console/aggregates/order/bad%20id", "/console/aggregates/Order/o-1"):
        status, kind, body = await fetch(console_fleet, path)
        assert (status, kind) == (400, "text/html"), (path, body)
        assert 'id="error"' in body and "is no aggregate name" in body, (path, body)


async def test_aggregate_ids_sort_naturally_and_page_past_500(console_fleet: FleetProcess) -> None:
    run = uuid.uuid4().hex[:6]
    ids = [f"nat{run}-{n}" for n in (10, 2, 1)]
    for aggregate in ids:
        await place(console_fleet, aggregate)
    many = [f"zz{run}-{n}" for n in range(505)]  # after every other order, naturally
    await stored_directly(console_fleet, many)

    async def listed() -> bool:
        _, _, body = await fetch(console_fleet, "/console/types/order")
        return all(f">{aggregate}<" in body for aggregate in ids)

    await wait_for(listed, timeout_s=30, what="the orders on the console")
    _, _, body = await fetch(console_fleet, "/console/types/order")
    positions = [body.index(f">{aggregate}<") for aggregate in (ids[2], ids[1], ids[0])]
    assert positions == sorted(positions)  # 1, 2, 10: not 1, 10, 2

    seen: list[str] = []
    page, shown = 1, ""
    while True:
        status, _, shown = await fetch(console_fleet, f"/console/types/order?page={page}")
        assert status == 200
        seen += re.findall(rf">(zz{run}-\d+)<", shown)
        if 'id="next"' not in shown:
            break
        page += 1
    assert page >= 2 and "showing 1 to 500" not in shown
    assert sorted(seen) == sorted(many) and len(seen) == len(set(seen))
    status, _, _ = await fetch(console_fleet, f"/console/types/order?page={page + 1}")
    assert status == 404


async def test_the_groups_page_shows_each_groups_partitions_and_offsets(
    console_fleet: FleetProcess,
) -> None:
    await place(console_fleet, f"grp-{uuid.uuid4().hex[:6]}")
    group = f"{console_fleet.env['EVENTFLEET_GROUP_ID']}-all"
    stored = f"{console_fleet.prefix}events.stored"

    async def shown() -> bool:
        _, _, body = await fetch(console_fleet, "/console/groups")
        return group in body and stored in body

    await wait_for(shown, timeout_s=30, what="the fleet's group on the groups page")
    status, kind, body = await fetch(console_fleet, "/console/groups")
    assert (status, kind) == (200, "text/html")
    assert 'id="partitions"' in body and "committed offset" in body and "end offset" in body
    assert "no lag role runs in this process" in body
    assert 'href="/console/groups"' in body  # in the navigation


async def test_the_timeline_shows_each_events_metadata_and_actor(
    console_fleet: FleetProcess,
) -> None:
    order = f"meta-{uuid.uuid4().hex[:6]}"
    body = {
        "type": "OrderPlaced", "data": {"items": order_items()},
        "command_id": f"cmd-{order}", "correlation_id": f"corr-{order}",
    }  # fmt: skip
    status, answer = await console_fleet.post(
        f"/v1/order/{order}/events", body, token=console_fleet.token()
    )
    assert status == 202, answer
    status, _ = await console_fleet.get(
        f"/v1/order/{order}/state?command_id=cmd-{order}&wait_ms=20000",
        token=console_fleet.token(),
    )
    assert status == 200
    status, _, page = await fetch(console_fleet, f"/console/aggregates/order/{order}")
    assert status == 200
    timeline = page[page.index('id="timeline"') :]
    assert "<th>metadata</th>" in page
    for shown in (f"cmd-{order}", f"corr-{order}", "schema", "v1", TESTER):
        assert shown in timeline, shown


async def test_search_by_prefix_type_command_and_time_pages_newest_first(
    console_fleet: FleetProcess,
) -> None:
    run = uuid.uuid4().hex[:6]
    token = console_fleet.token()
    for n in range(3):
        body = {
            "type": "OrderPlaced", "data": {"items": order_items()},
            "command_id": f"sc-{run}-{n}", "correlation_id": f"sk-{run}",
        }  # fmt: skip
        status, _ = await console_fleet.post(f"/v1/order/srch{run}-{n}/events", body, token=token)
        assert status == 202
    for n in range(3):
        status, _ = await console_fleet.get(
            f"/v1/order/srch{run}-{n}/state?command_id=sc-{run}-{n}&wait_ms=20000", token=token
        )
        assert status == 200

    status, kind, page = await fetch(console_fleet, f"/console/search?type=order&prefix=srch{run}")
    assert (status, kind) == (200, "text/html")
    results = page[page.index('id="results"') :]
    found = re.findall(rf"order (srch{run}-\d)</a>", results)
    assert found == [f"srch{run}-2", f"srch{run}-1", f"srch{run}-0"]  # newest first
    assert f'href="/console/aggregates/order/srch{run}-0"' in results

    _, _, page = await fetch(console_fleet, f"/console/search?command_id=sc-{run}-1")
    assert re.findall(rf"order (srch{run}-\d)</a>", page) == [f"srch{run}-1"]
    _, _, page = await fetch(console_fleet, f"/console/search?correlation_id=sk-{run}")
    assert len(re.findall(rf"order (srch{run}-\d)</a>", page)) == 3
    _, _, page = await fetch(
        console_fleet,
        f"/console/search?prefix=srch{run}&since=2000-01-01T00:00:00Z&until=2001-01-01T00:00:00Z",
    )
    assert f"srch{run}" not in page[page.index('id="results"') :]
    _, _, page = await fetch(
        console_fleet, f"/console/search?prefix=srch{run}&event_type=OrderPaid"
    )
    assert f"srch{run}" not in page[page.index('id="results"') :]


async def test_search_pages_past_its_page_size(console_fleet: FleetProcess) -> None:
    run = uuid.uuid4().hex[:6]
    await stored_directly(console_fleet, [f"pg{run}-{n}" for n in range(130)])
    seen: list[str] = []
    query = f"/console/search?prefix=pg{run}"
    while True:
        status, _, page = await fetch(console_fleet, query)
        assert status == 200
        seen += re.findall(rf"order (pg{run}-\d+)</a>", page)
        older = re.search(r'<a href="(\?[^"]*before=[^"]*)">older</a>', page)
        if older is None:
            break
        query = "/console/search" + older.group(1).replace("&amp;", "&")
    assert sorted(seen) == sorted(f"pg{run}-{n}" for n in range(130))


async def test_bad_search_input_is_a_console_page_with_its_status(
    console_fleet: FleetProcess,
) -> None:
    for query, status, named in [
        ("since=yesterday", 400, "since"),
        ("type=nope", 404, "nope"),
        ("prefix=" + "x" * 201, 400, "longer than 200"),
        ("prefix=a&before=garbage", 400, "page cursor"),
    ]:
        got, kind, page = await fetch(console_fleet, f"/console/search?{query}")
        assert (got, kind) == (status, "text/html"), (query, page)
        assert 'id="error"' in page and named in page, (query, page)
    status, _, page = await fetch(console_fleet, "/console/search?prefix=%3Cscript%3E")
    assert status == 200 and "<script>" not in page and "&lt;script&gt;" in page


async def test_dead_letters_newest_first_with_time_state_and_aggregate(
    console_fleet: FleetProcess,
) -> None:
    older, newer = (f"dlqt-{uuid.uuid4().hex[:6]}" for _ in range(2))
    first = await dead_letter_of(console_fleet, await poison_order(console_fleet, older))
    second = await dead_letter_of(console_fleet, await poison_order(console_fleet, newer))
    status, _, page = await fetch(console_fleet, "/console/dlq")
    assert status == 200 and "<th>dead-lettered at</th>" in page
    assert page.index(f">{second.position}<") < page.index(f">{first.position}<")  # by time
    assert f'href="/console/aggregates/order/{newer}"' in page
    status, _, page = await fetch(console_fleet, "/console/dlq?state=new&reason=invalid_data")
    assert status == 200 and f">{second.position}<" in page
    status, _, page = await fetch(console_fleet, "/console/dlq?state=lost")
    assert status == 400 and 'id="error"' in page
    status, _, page = await fetch(console_fleet, f"/console/dlq/{second.position}")
    entry = page[page.index('id="entry"') :]
    at = entry.find(">None<")
    assert at < 0, entry[max(0, at - 300) : at + 20]
    assert "<td>at</td>" in entry  # when it was dead-lettered
    assert "&quot;aggregate_id&quot;: &quot;" in entry  # the value as pretty JSON, not a string


async def test_the_topic_browser_shows_records_newest_first_decoded_with_headers(
    console_fleet: FleetProcess,
) -> None:
    token = console_fleet.token()
    older, newer = (f"topic-{uuid.uuid4().hex[:6]}" for _ in range(2))
    for order in (older, newer):
        await place(console_fleet, order)
        status, _ = await console_fleet.get(
            f"/v1/order/{order}/state?min_version=1&wait_ms=20000", token=token
        )
        assert status == 200
    stored = f"{console_fleet.prefix}events.stored"
    status, _, page = await fetch(console_fleet, "/console/topics")
    assert status == 200 and f'href="/console/topics/{stored}"' in page
    status, _, page = await fetch(console_fleet, f"/console/topics/{stored}")
    assert status == 200
    records = page[page.index('id="records"') :]
    assert records.index(f"order:{newer}") < records.index(f"order:{older}")  # newest first
    assert "&quot;aggregate_id&quot;: &quot;" in records  # decoded, pretty
    assert "<code>" in records  # headers shown
    status, _, page = await fetch(console_fleet, "/console/topics/elsewhere")
    assert status == 404 and 'id="error"' in page
    status, _, page = await fetch(console_fleet, f"/console/topics/{stored}?partition=x")
    assert status == 400


async def test_diffs_between_versions_and_of_the_snapshot(console_fleet: FleetProcess) -> None:
    order = f"diff-{uuid.uuid4().hex[:6]}"
    await placed_and_stored(console_fleet, order, paid=True)
    status, _, page = await fetch(console_fleet, f"/console/aggregates/order/{order}")
    assert f'href="/console/aggregates/order/{order}/diff?from=1&amp;to=2"' in page
    status, _, page = await fetch(
        console_fleet, f"/console/aggregates/order/{order}/diff?from=1&to=2"
    )
    assert status == 200 and 'class="bad">' in page and "$.status" in page
    status, _, page = await fetch(
        console_fleet, f"/console/aggregates/order/{order}/diff?from=2&to=2"
    )
    assert status == 200 and ">identical<" in page
    for query, code in [("from=1", 400), ("from=1&to=9", 404), ("from=a&to=2", 400)]:
        status, _, page = await fetch(
            console_fleet, f"/console/aggregates/order/{order}/diff?{query}"
        )
        assert status == code and 'id="error"' in page, (query, page)
    status, _, page = await fetch(console_fleet, f"/console/aggregates/order/{order}/diff")
    assert status in (200, 404)  # a snapshot may or may not be taken yet: compared, or said so
    if status == 200:
        assert ">identical<" in page


async def test_the_lag_page_refreshes_itself_without_script(console_fleet: FleetProcess) -> None:
    status, _, page = await fetch(console_fleet, "/console/lag")
    assert status == 200 and '<meta http-equiv="refresh" content="2">' in page
    assert "<script" not in page
