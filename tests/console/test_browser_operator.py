"""The operator pages in headless Chromium: search with its form and paging, groups and
partitions, the topic browser, and a diff between versions reached from the timeline."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.console.browsing import after_submit, sign_in, texts
from tests.console.conftest import dead_letter_of, poison_order
from tests.fleet import FleetProcess, order_items
from tests.tokens import OPERATOR, VIEWER
from tests.waiting import wait_for


@pytest.fixture
def fleet(console_fleet: FleetProcess) -> FleetProcess:
    return console_fleet


async def test_an_operator_searches_browses_topics_groups_and_diffs(
    fleet: FleetProcess, browser: Any
) -> None:
    token = fleet.token()
    order = f"op{uuid.uuid4().hex[:6]}-1"
    placed = {"type": "OrderPlaced", "data": {"items": order_items()}, "command_id": f"c-{order}"}
    assert (await fleet.post(f"/v1/order/{order}/events", placed, token=token))[0] == 202
    paid = {"type": "OrderPaid", "data": {"amount": 5}}
    assert (await fleet.post(f"/v1/order/{order}/events", paid, token=token))[0] == 202
    status, _ = await fleet.get(f"/v1/order/{order}/state?min_version=2&wait_ms=20000", token=token)
    assert status == 200

    sign_in(browser, fleet)
    browser.get(fleet.url + "/console")
    browser.find_element("link text", "Search").click()
    after_submit(browser, "search")
    browser.find_element("name", "prefix").send_keys(order[:8])
    browser.find_element("css selector", "#search button").click()
    results = after_submit(browser, "results")
    assert texts(browser, "#results tbody tr td:nth-child(4)") == ["OrderPaid", "OrderPlaced"]
    assert f"c-{order}" in results.text  # the command id in the metadata

    browser.find_element("link text", f"order {order}").click()  # to the aggregate
    after_submit(browser, "timeline")
    browser.find_element("link text", "the last event's change").click()
    assert "differences" in after_submit(browser, "verdict").text
    assert any(cell.startswith("$.status") for cell in texts(browser, "#diff td:first-child"))

    browser.find_element("link text", "Groups").click()
    after_submit(browser, "partitions")
    assert f"{fleet.env['EVENTFLEET_GROUP_ID']}-all" in texts(browser, "#groups td:first-child")

    browser.find_element("link text", "Topics").click()
    stored = f"{fleet.prefix}events.stored"
    after_submit(browser, "topics")
    browser.find_element("link text", stored).click()
    records = after_submit(browser, "records")
    assert f"order:{order}" in records.text
    row = records.find_element("xpath", f".//td[text()='order:{order}']/..")
    partition = row.find_element("css selector", "td").text
    browser.get(browser.current_url + "?limit=1")  # one record a page: older pages exist
    after_submit(browser, "records")
    browser.find_element("link text", f"older in partition {partition}").click()
    after_submit(browser, "records")
    assert texts(browser, "#records tbody td:first-child") == [partition]  # that partition only
    browser.find_element("link text", "newest of every partition").click()
    after_submit(browser, "records")


async def test_an_operator_rebuilds_a_projection_and_follows_it(
    fleet: FleetProcess, browser: Any
) -> None:
    sign_in(browser, fleet, "olga", [OPERATOR])
    browser.get(fleet.url + "/console/projections")
    row = browser.find_element("xpath", "//table[@id='projections']//td[text()='chat_messages']/..")
    assert "chat_room" in row.text and "running here" in row.text
    browser.find_element("id", "rebuild-chat_messages").click()
    assert "started" in after_submit(browser, "outcome", "error").text

    def rebuilt() -> bool:
        browser.get(fleet.url + "/console/projections")
        cell = browser.find_element(
            "xpath", "//table[@id='projections']//td[text()='chat_messages']/.."
        )
        return "rebuilt" in cell.text and "by olga" in cell.text

    await wait_for(rebuilt, timeout_s=60, what="the rebuild to finish", interval_s=0.5)


async def test_a_viewer_sees_projections_but_cannot_rebuild(
    fleet: FleetProcess, browser: Any
) -> None:
    sign_in(browser, fleet, "vera", [VIEWER])
    browser.get(fleet.url + "/console/projections")
    assert browser.find_elements("id", "projections")
    status, _ = await fleet.post(
        "/console/projections/chat_messages/rebuild", token=fleet.token("vera", [VIEWER])
    )
    assert status == 403


async def test_bulk_skip_is_reviewed_then_confirmed_and_states_follow(
    fleet: FleetProcess, browser: Any
) -> None:
    letters = [
        await dead_letter_of(fleet, await poison_order(fleet, f"bulk-{uuid.uuid4().hex[:6]}"))
        for _ in range(2)
    ]
    single = await dead_letter_of(fleet, await poison_order(fleet, f"one-{uuid.uuid4().hex[:6]}"))
    sign_in(browser, fleet, "olga", [OPERATOR])
    browser.get(fleet.url + "/console/dlq?state=new")
    for entry in letters:
        browser.find_element("css selector", f"input[name=entry][value='{entry.position}']").click()
    browser.find_element("css selector", "select[name=action] option[value=skip]").click()
    browser.find_element("id", "bulk-review").click()
    review = after_submit(browser, "review", "error")
    assert sorted(texts(browser, "#review tbody td:first-child")) == sorted(
        e.position for e in letters
    ), review.text
    browser.get(fleet.url + "/console/dlq?state=skipped")  # nothing happens before the confirm
    assert not any(browser.find_elements("link text", e.position) for e in letters)
    browser.back()
    after_submit(browser, "confirm").click()
    outcome = after_submit(browser, "bulk-outcome", "error")
    assert outcome.text.count("skipped") == 2

    browser.get(f"{fleet.url}/console/dlq/{single.position}")
    browser.find_element("id", "skip").click()
    assert "skipped by olga" in after_submit(browser, "outcome", "error").text

    browser.get(fleet.url + "/console/dlq?state=skipped")
    for entry in [*letters, single]:
        row = browser.find_element("link text", entry.position).find_element("xpath", "../..")
        assert "skipped by olga" in row.text
    browser.get(fleet.url + "/console/dlq?state=new")
    assert not any(browser.find_elements("link text", e.position) for e in [*letters, single])
