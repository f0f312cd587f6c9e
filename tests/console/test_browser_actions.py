"""The console's operator actions in headless Chromium, without script: an event posted from
the schema's form, a record produced, a record refused on the fleet's own topic, and a group's
offsets reset after a dry run — each through its review and confirm pages."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiokafka import TopicPartition

from tests.console.browsing import after_submit, sign_in, texts
from tests.console.conftest import stored
from tests.console.kafka_state import commit, committed, create, filled, records_of
from tests.fleet import FleetProcess
from tests.tokens import OPERATOR
from tests.waiting import wait_for


@pytest.fixture
def fleet(console_fleet: FleetProcess) -> FleetProcess:
    return console_fleet


async def test_an_operator_posts_an_event_from_the_schema_form(
    fleet: FleetProcess, browser: Any
) -> None:
    order = f"web-{uuid.uuid4().hex[:8]}"
    sign_in(browser, fleet, "olga", [OPERATOR])
    browser.get(fleet.url + "/console")
    browser.find_element("link text", "Post").click()
    after_submit(browser, "choose")
    browser.find_element("css selector", "option[value='order:OrderPlaced']").click()
    browser.find_element("id", "aggregate_id").send_keys(order)
    browser.find_element("id", "choose-fields").click()
    after_submit(browser, "post-event")
    browser.find_element("id", "data.items").send_keys('[{"sku": "a", "qty": 1, "price": 2}]')
    browser.find_element("id", "review").click()
    assert after_submit(browser, "route", "error").text == f"POST /v1/order/{order}/events"
    assert '"sku": "a"' in browser.find_element("id", "preview").text
    assert await stored(fleet, "order", order) == []  # nothing before the confirm
    browser.find_element("id", "confirm").click()
    assert "status 202" in after_submit(browser, "outcome", "error").text
    assert "event_id" in browser.find_element("id", "answer").text

    async def arrived() -> bool:
        return len(await stored(fleet, "order", order)) == 1

    await wait_for(arrived, timeout_s=60, what="the posted event stored")


async def test_an_operator_produces_a_record_and_is_refused_a_fleet_topic(
    fleet: FleetProcess, browser: Any, unique_name: str
) -> None:
    topic = await create(fleet, f"web-{unique_name}", 1)
    sign_in(browser, fleet, "olga", [OPERATOR])
    browser.get(fleet.url + "/console/produce")
    for field, text in (("topic", topic), ("key", "k"), ("headers", "origin: web"),
                        ("value", '{"n": 1}')):  # fmt: skip
        browser.find_element("id", field).send_keys(text)
    browser.find_element("id", "review").click()
    review = after_submit(browser, "record", "error")
    assert topic in review.text and "origin" in review.text
    browser.find_element("id", "confirm").click()
    assert "status 200" in after_submit(browser, "outcome", "error").text
    [record] = await records_of(fleet, topic)
    assert (record.key, record.value) == (b"k", b'{"n": 1}')

    commands = f"{fleet.prefix}commands"
    before = len(await records_of(fleet, commands))
    browser.get(fleet.url + "/console/produce")
    browser.find_element("id", "topic").send_keys(commands)
    browser.find_element("id", "value").send_keys("{}")
    browser.find_element("id", "review").click()
    refused = after_submit(browser, "error")
    assert "eventfleet-admin" in refused.text and "nothing was produced" in refused.text
    assert not browser.find_elements("id", "confirm")
    assert len(await records_of(fleet, commands)) == before


async def test_an_operator_resets_an_idle_groups_offsets_after_a_dry_run(
    fleet: FleetProcess, browser: Any, unique_name: str
) -> None:
    topic = await create(fleet, f"web-reset-{unique_name}", 2)
    group = f"web-idle-{uuid.uuid4().hex[:8]}"
    await filled(fleet, topic, 3)
    await commit(fleet, group, {TopicPartition(topic, p): 1 for p in (0, 1)})
    sign_in(browser, fleet, "olga", [OPERATOR])
    browser.get(f"{fleet.url}/console/groups/{group}/reset?topic={topic}")
    assert "no members" in after_submit(browser, "members").text
    browser.find_element("id", "to-latest").click()
    browser.find_element("id", "dry-run").click()
    after_submit(browser, "plan", "error")
    assert texts(browser, "#plan tbody td:nth-child(2)") == ["1", "1"]  # committed now
    assert texts(browser, "#plan tbody td:nth-child(3)") == ["3", "3"]  # the new offsets
    assert texts(browser, "#plan tbody td:nth-child(5)") == ["0", "0"]  # the lag after
    assert await committed(fleet, group, topic) == {0: 1, 1: 1}  # a dry run moves nothing
    browser.find_element("id", "confirm").click()
    assert "status 200" in after_submit(browser, "outcome", "error").text
    assert await committed(fleet, group, topic) == {0: 3, 1: 3}
    browser.get(fleet.url + "/console/audit")
    assert f"{group} on {topic}" in after_submit(browser, "audit").text
