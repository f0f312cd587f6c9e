"""The console in a real headless browser, on a fleet with console actions on.

Pages load; a known aggregate's timeline shows its events, time travel and its snapshot;
a dead letter is fixed, reviewed, confirmed and stored once, however often it is replayed.
"""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import pytest
from selenium.webdriver.support.ui import WebDriverWait

from tests.console.browsing import after_submit, sign_in, texts
from tests.console.conftest import dead_letter_of, poison_order, stored
from tests.fleet import LIFECYCLE, FleetProcess, order_items
from tests.tokens import OPERATOR, TESTER
from tests.waiting import wait_for


@pytest.fixture
def fleet(console_fleet: FleetProcess) -> FleetProcess:
    """Every test here drives the package's fleet with console actions on."""
    return console_fleet


async def test_pages_load_and_a_timeline_shows_its_events(
    fleet: FleetProcess, browser: Any
) -> None:
    order_id = f"console-{uuid.uuid4().hex[:8]}"
    for event_type, data in LIFECYCLE:
        status, body = await fleet.post(
            f"/v1/order/{order_id}/events", {"type": event_type, "data": data}
        )
        assert status == 202, body
    await wait_for(lambda: _count(fleet, order_id, 4), timeout_s=60, what="the lifecycle stored")

    sign_in(browser, fleet)
    browser.get(fleet.url + "/console")
    assert "eventfleet console" in browser.title
    assert "signed in as tester" in browser.find_element("id", "who").text
    assert "<script" not in browser.page_source and "<style" not in browser.page_source
    assert "order" in texts(browser, "#types td a")
    browser.find_element("link text", "order").click()
    after_submit(browser, "aggregates")
    browser.find_element("link text", order_id).click()
    after_submit(browser, "timeline")
    rows = browser.find_elements("css selector", "#timeline tbody tr")
    cells = [r.find_elements("css selector", "td") for r in rows]
    assert [(c[0].text, c[2].text) for c in cells] == [
        (str(v), t) for v, (t, _) in enumerate(LIFECYCLE, start=1)
    ]
    assert '"sku-0"' in cells[0][4].text  # the payload
    assert all(c[5].text.startswith(f"{TESTER} (") for c in cells)  # metadata.actor
    assert '"status": "delivered"' in browser.find_element("id", "state").text

    async def snapshot_taken() -> bool:  # OrderDelivered asks the snapshotter for one
        browser.refresh()
        return (
            "equals the state replayed from scratch" in browser.find_element("id", "snapshot").text
        )

    await wait_for(snapshot_taken, timeout_s=60, what="the snapshot compared", interval_s=0.3)

    field = browser.find_element("name", "at_version")
    field.send_keys("2")
    field.submit()
    WebDriverWait(browser, 30).until(lambda d: "at version 2" in d.page_source)
    assert "at_version=2" in browser.current_url
    assert "Replayed state at version 2" in browser.page_source
    assert '"status": "paid"' in browser.find_element("id", "state").text

    for path, marker in (
        ("/console/lag", "svg.chart.lag"),
        ("/console/dlq", "#dead-letters"),
        ("/console/audit", "#audit"),
        ("/console/types/order", "#aggregates"),
    ):
        browser.get(fleet.url + path)
        shown = browser.find_elements("css selector", f"{marker}, #error")
        assert shown, f"{path} shows neither {marker} nor an error: {browser.title!r}"
        assert shown[0].get_attribute("id") != "error", f"{path}: {shown[0].text}"
    refused = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert refused == []  # no page's browser asked /favicon.ico (and was refused a 401)

    async def charted() -> bool:  # sampled every second: a line once two samples exist
        browser.get(fleet.url + "/console/lag")
        return len(browser.find_elements("css selector", "svg.chart polyline")) == 2

    await wait_for(charted, timeout_s=30, what="lag and throughput charted", interval_s=0.5)
    assert browser.find_elements("css selector", "#samples tbody tr")
    browser.get(fleet.url + "/console/aggregates/order/no-such-order")
    assert "has no events" in browser.find_element("id", "error").text


async def test_a_fixed_dead_letter_is_stored_once_however_often_it_is_replayed(
    fleet: FleetProcess, browser: Any
) -> None:
    order_id = f"poisoned-{uuid.uuid4().hex[:8]}"
    event_id = await poison_order(fleet, order_id)
    entry = await dead_letter_of(fleet, event_id)
    assert entry.reason == "invalid_data"

    sign_in(browser, fleet)
    browser.get(fleet.url + "/console/dlq")
    assert browser.find_elements("link text", entry.position), "the entry is listed"
    fixed = {"aggregate_type": "order", "aggregate_id": order_id, "type": "OrderPlaced",
             "data": {"items": order_items(1)}}  # fmt: skip
    for operator in ("alice", "bob"):  # the second replay must change nothing
        sign_in(browser, fleet, operator, [OPERATOR])
        browser.get(f"{fleet.url}/console/dlq/{entry.position}")
        assert f"as {operator}" in browser.find_element("id", "operator").text
        _replace(browser.find_element("id", "submission"), fixed)
        browser.find_element("id", "review").click()
        preview = after_submit(browser, "preview", "error").text
        assert '"sku-0"' in preview and f"dlq-replay:{event_id}" in preview
        assert browser.find_element("id", "route").text == f"POST /v1/order/{order_id}/events"
        browser.find_element("id", "confirm").click()
        outcome = after_submit(browser, "outcome", "error").text
        assert outcome.startswith("status 202"), outcome
        await wait_for(lambda: _count(fleet, order_id, 1), timeout_s=60, what="the fix stored")

    # The list says it: replayed, by whom and when; the entry shows what was replayed.
    browser.get(fleet.url + "/console/dlq?state=replayed")
    row = browser.find_element("link text", entry.position).find_element("xpath", "../..")
    assert "replayed by alice" in row.text and order_id in row.text
    browser.get(fleet.url + "/console/dlq?state=new")
    assert not browser.find_elements("link text", entry.position)
    browser.get(f"{fleet.url}/console/dlq/{entry.position}")
    assert "Replayed by alice" in browser.find_element("id", "replayed").text
    assert '"sku-0"' in (browser.find_element("id", "submission").get_attribute("value") or "")

    # A later command on the same aggregate is stored after anything the replays produced.
    status, _ = await fleet.post(
        f"/v1/order/{order_id}/events", {"type": "OrderPaid", "data": {"amount": 2.5}}
    )
    assert status == 202
    await wait_for(lambda: _count(fleet, order_id, 2), timeout_s=60, what="the payment stored")
    events = await stored(fleet, "order", order_id)
    assert [(e["version"], e["type"]) for e in events] == [(1, "OrderPlaced"), (2, "OrderPaid")]
    assert events[0]["data"] == fixed["data"]
    assert events[0]["metadata"]["actor"] == {"principal": "alice", "roles": [OPERATOR]}

    browser.get(fleet.url + "/console/audit")
    rows = [r.text for r in browser.find_elements("css selector", "#audit tbody tr")]
    ours = [r for r in rows if entry.position in r and order_id in r]
    assert len(ours) == 2 and "bob" in ours[0] and "alice" in ours[1]  # newest first


async def test_a_bad_fix_is_refused_on_review_and_nothing_is_submitted(
    fleet: FleetProcess, browser: Any
) -> None:
    run = uuid.uuid4().hex[:8]
    entry = await dead_letter_of(fleet, await poison_order(fleet, f"bad-fix-{run}"))
    position = entry.position
    # Names of this test's own: another test of the shared fleet may replay as carol.
    operator, forger = f"carol-{run}", f"mallory-{run}"
    sign_in(browser, fleet, operator, [OPERATOR])
    browser.get(f"{fleet.url}/console/dlq/{position}")
    _replace(browser.find_element("id", "submission"), {"type": "OrderPlaced"})
    browser.find_element("id", "review").click()
    # Wait for the next page: reading the old one before it loads is a race.
    assert (
        "missing fields aggregate_type, aggregate_id, data" in after_submit(browser, "error").text
    )
    form_type = {"Content-Type": "application/x-www-form-urlencoded"}
    status, body = await fleet.request(
        "POST", f"/console/dlq/{position}/replay", raw=b"operator=x",
        headers={**fleet.auth_headers, **form_type},
    )  # fmt: skip
    assert (status, body["reason"]) == (403, "csrf_token")  # no form token: refused first
    form = {"submission": "{}", "operator": forger, "confirm": "yes", "csrf": "t"}
    for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        async with aiohttp.ClientSession() as session:
            url = f"{fleet.url}/console/dlq/{position}/replay"
            sent = {**headers, **fleet.auth_headers, "Cookie": "eventfleet_csrf=t"}
            async with session.post(url, data=form, headers=sent) as answer:
                assert answer.status == 403
                assert (await answer.json())["error"] == "cross_origin"
    status, body = await fleet.get(f"/v1/order/bad-fix-{run}/events")
    assert (status, body["error"]) == (404, "not_found"), body  # nothing was submitted: none stored
    status, page = await fleet.get("/console/audit")
    assert status == 200 and f"bad-fix-{run}" not in page  # nor a replay audited
    assert forger not in page and operator not in page


def _replace(textarea: Any, value: dict[str, Any]) -> None:
    import orjson

    textarea.clear()
    textarea.send_keys(orjson.dumps(value).decode())


async def _count(fleet: FleetProcess, order_id: str, n: int) -> bool:
    return len(await stored(fleet, "order", order_id)) == n
