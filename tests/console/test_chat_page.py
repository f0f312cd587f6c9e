"""The chat page in two headless Chromium browsers on one room: each sees the other's
messages, edits, deletes and read receipts live; a reload resumes without losing or
repeating a message. The page runs under the server's Content-Security-Policy (no inline
script), on a fleet whose door is open (a browser's WebSocket cannot send a bearer token)."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.fleet import FleetProcess, running_fleet
from tests.waiting import wait_for
from workers.devtools.embedded import EmbeddedStack


@pytest.fixture(scope="module")
async def fleet(stack: EmbeddedStack) -> AsyncIterator[FleetProcess]:
    async with running_fleet(stack, f"chat_{uuid.uuid4().hex[:8]}", EVENTFLEET_AUTH="none") as p:
        yield p


def chromium() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    session = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    session.set_page_load_timeout(60)
    return session


@pytest.fixture(scope="module")
def two() -> Iterator[tuple[Any, Any]]:
    """Two browsers: two separate contexts, as two people on two machines."""
    first = chromium()
    try:
        second = chromium()
        try:
            yield first, second
        finally:
            second.quit()
    finally:
        first.quit()


# Read and click in one script each: the page re-renders its lists on every event, so an
# element found in one WebDriver call may be gone by the next.
def lines(browser: Any) -> list[str]:
    texts: list[str] = browser.execute_script(
        "return [...document.querySelectorAll('#messages li')].map("
        "li => li.querySelector('b').textContent + ': ' + li.querySelector('.content').textContent)"
    )
    return texts


def reads(browser: Any) -> list[str]:
    texts: list[str] = browser.execute_script(
        "return [...document.querySelectorAll('#reads li')].map(li => li.textContent)"
    )
    return texts


def click(browser: Any, css: str) -> None:
    browser.execute_script(f"document.querySelector({css!r}).click()")


def join(browser: Any, url: str, name: str) -> None:
    browser.get(url)
    field = browser.find_element("id", "me")
    field.clear()
    field.send_keys(name)


def say(browser: Any, text: str) -> None:
    box = browser.find_element("id", "text")
    box.clear()
    box.send_keys(text)
    browser.find_element("id", "submit").click()


async def connected(browser: Any) -> None:
    await wait_for(lambda: browser.find_element("tag name", "body").get_attribute("data-live")
                   == "1", timeout_s=30, what="the page's socket open")  # fmt: skip


async def test_two_browsers_chat_live_and_a_reload_resumes_exactly(
    fleet: FleetProcess, two: tuple[Any, Any]
) -> None:
    ann, bob = two
    url = f"{fleet.url}/chat/room-{uuid.uuid4().hex[:6]}"
    join(ann, url, "ann")
    join(bob, url, "bob")
    await connected(ann)
    await connected(bob)

    say(ann, "hello bob")
    for browser in (ann, bob):
        await wait_for(lambda b=browser: lines(b) == ["ann: hello bob"], timeout_s=30,  # type: ignore[misc]
                       what="ann's message on both pages")  # fmt: skip
    await wait_for(lambda: any(r.startswith("bob read up to") for r in reads(ann)), timeout_s=30,
                   what="bob's read receipt on ann's page")  # fmt: skip

    click(ann, "#messages li button.edit")
    say(ann, "hello again")
    for browser in (ann, bob):
        await wait_for(lambda b=browser: lines(b) == ["ann: hello again (edited)"], timeout_s=30,  # type: ignore[misc]
                       what="the edit on both pages")  # fmt: skip

    say(bob, "hi ann")
    await wait_for(lambda: lines(ann) == ["ann: hello again (edited)", "bob: hi ann"],
                   timeout_s=30, what="bob's message on ann's page")  # fmt: skip
    click(ann, "#messages li button.delete")
    for browser in (ann, bob):
        await wait_for(lambda b=browser: lines(b) == ["bob: hi ann"], timeout_s=30,  # type: ignore[misc]
                       what="the delete on both pages")  # fmt: skip
    await wait_for(lambda: any(r.startswith("ann read up to") for r in reads(bob)), timeout_s=30,
                   what="ann's read receipt on bob's page")  # fmt: skip

    position = bob.find_element("id", "position").text
    bob.refresh()  # resumes from sessionStorage with after_version: no loss, no repeat
    await connected(bob)
    assert lines(bob) == ["bob: hi ann"] and bob.find_element("id", "position").text == position
    say(ann, "still there?")
    await wait_for(lambda: lines(bob) == ["bob: hi ann", "ann: still there?"], timeout_s=30,
                   what="a message after the reload, once")  # fmt: skip
    errors = [e for e in ann.get_log("browser") + bob.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors  # no CSP violation, no script error
