"""The topic pages in a real headless browser at 1280 px: the header stays one line with the
sign-in state; the topics list leads to a topic, whose filter form finds one order's records;
its tail follows a record that arrives by reloading itself; a picked zone shows beside UTC;
the settings page lists the topic's configs.
Screenshots go to ``EVENTFLEET_SCREENSHOTS`` when set (a directory), to look at."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.support.ui import WebDriverWait

from tests.console.browsing import after_submit, sign_in, texts
from tests.console.http_calls import placed_and_stored
from tests.fleet import FleetProcess

RELOADING = (StaleElementReferenceException,)
"""The tail page reloads itself: an element found may be gone a moment later."""


def click_on_reloading_page(browser: Any, link_text: str) -> None:
    def clicked(driver: Any) -> bool:
        driver.find_element("link text", link_text).click()
        return True

    WebDriverWait(browser, 30, ignored_exceptions=RELOADING).until(clicked)


def snap(browser: Any, name: str) -> None:
    where = os.environ.get("EVENTFLEET_SCREENSHOTS")
    if where:
        browser.save_screenshot(str(Path(where) / f"{name}.png"))


async def test_the_topics_list_a_filter_and_the_tail_in_a_browser(
    console_fleet: FleetProcess, browser: Any
) -> None:
    fleet = console_fleet
    order = f"brw-{uuid.uuid4().hex[:6]}"
    await placed_and_stored(fleet, order)
    browser.set_window_size(1280, 900)
    sign_in(browser, fleet)
    browser.get(fleet.url + "/console/topics")
    snap(browser, "topics")
    header = browser.find_element("tag name", "header")
    line = browser.find_element("css selector", "header nav a").size["height"]
    assert header.size["height"] < 2.5 * line, "the header wraps at 1280 px"
    assert "signed in as tester" in browser.find_element("id", "who").text
    stored = f"{fleet.prefix}events.stored"
    assert stored in texts(browser, "#topics td a")

    browser.find_element("link text", stored).click()
    after_submit(browser, "filters")
    browser.find_element("css selector", "#filters input[name=key]").send_keys(f"order:{order}")
    browser.find_element("css selector", "#filters button").click()
    WebDriverWait(browser, 30).until(lambda d: "key=" in d.current_url)
    keys = texts(browser, "#records tbody td:nth-child(4)")
    assert keys == [f"order:{order}"], keys
    assert "<script" not in browser.page_source
    snap(browser, "filtered")

    browser.find_element("css selector", "#zone input[name=tz]").clear()
    browser.find_element("css selector", "#zone input[name=tz]").send_keys("Europe/Berlin")
    browser.find_element("css selector", "#zone button").click()
    WebDriverWait(browser, 30).until(
        lambda d: d.find_elements("css selector", "#records .local"), message="no local time"
    )
    local = texts(browser, "#records .local")[0]
    assert local.endswith(("CET", "CEST")), local
    snap(browser, "zone")

    browser.find_element("link text", "tail").click()
    after_submit(browser, "following")
    assert "from=" in browser.current_url and "started=" in browser.current_url
    later = f"brw-{uuid.uuid4().hex[:6]}"
    await placed_and_stored(fleet, later)
    # The page reloads itself every 2 s: the new record shows without a click.
    WebDriverWait(browser, 30, poll_frequency=0.2, ignored_exceptions=RELOADING).until(
        lambda d: f"order:{later}" in [e.text for e in d.find_elements(
            "css selector", "#tail tbody td:nth-child(4)")],
        message="the tail did not show the new record",
    )  # fmt: skip
    snap(browser, "tail")
    click_on_reloading_page(browser, "settings")
    after_submit(browser, "configs")
    assert "retention.ms" in texts(browser, "#configs td code")
    snap(browser, "settings")
