"""Console pages over HTTP: errors as console pages with the API's statuses, natural order and
paging of aggregates, and the groups & partitions page."""

from __future__ import annotations

import asyncio
import re
import uuid

import aiohttp

from tests.fleet import FleetProcess, order_items
from tests.tokens import TESTER
from tests.waiting import wait_for


async def fetch(fleet: FleetProcess, path: str, *, follow: bool = True) -> tuple[int, str, str]:
    """(status, content type, body or Location) of a GET as the test principal."""
    async with (
        aiohttp.ClientSession(headers=fleet.auth_headers) as session,
        session.get(fleet.url + path, allow_redirects=follow) as response,
    ):
        body = await response.text()
        where = response.headers.get("Location", "") if not follow else body
        return response.status, response.content_type, where


async def place(fleet: FleetProcess, order: str) -> None:
    status, body = await fleet.post(
        f"/v1/order/{order}/events",
        {"type": "OrderPlaced", "data": {"items": order_items()}},
        token=fleet.token(),
    )
    assert status == 202, body


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


async def test_aggregate_ids_sort_naturally_and_page_past_500(console_fleet: FleetProcess) -> None:
    run = uuid.uuid4().hex[:6]
    ids = [f"nat{run}-{n}" for n in (10, 2, 1)]
    for aggregate in ids:
        await place(console_fleet, aggregate)
    owner = console_fleet.token()
    opened = {"type": "AccountOpened", "data": {"owner": "ada"}}
    accounts = [f"acct{run}-{n}" for n in range(505)]
    for start in range(0, len(accounts), 25):  # sync domain: stored when answered
        answers = await asyncio.gather(*(
            console_fleet.post(f"/v1/account/{account}/events", opened, token=owner)
            for account in accounts[start : start + 25]
        ))  # fmt: skip
        assert all(status == 201 for status, _ in answers), answers

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
        status, _, shown = await fetch(console_fleet, f"/console/types/account?page={page}")
        assert status == 200
        seen += re.findall(rf">(acct{run}-\d+)<", shown)
        if 'id="next"' not in shown:
            break
        page += 1
    assert page >= 2 and "showing 1 to 500" not in shown
    assert sorted(seen) == sorted(accounts) and len(seen) == len(set(seen))
    status, _, _ = await fetch(console_fleet, f"/console/types/account?page={page + 1}")
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
