"""The chat page in two headless Chromium browsers on one room, under the door tests run with
(``EVENTFLEET_AUTH=jwt``, as ``eventfleet dev`` by default): each signs in through the
console's sign-in and comes back, chats as its token's principal (no name field), edits its
own message, is offered no Edit or Delete on the other's (the fleet would refuse), deletes, sees
read receipts by
name, and a reload resumes without losing or repeating a message. The page runs under its
Content-Security-Policy (no inline script or style), styled by its own stylesheet. An expired
sign-in is said so and signing in again resumes; with the door open (``none``) a typed name
chats. Screenshots go to /tmp/chat-*.png."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.fleet import FleetProcess, running_fleet
from tests.waiting import wait_for
from workers.devtools.embedded import EmbeddedStack


@pytest.fixture(scope="module")
async def fleet(stack: EmbeddedStack) -> AsyncIterator[FleetProcess]:
    name = f"chat_{uuid.uuid4().hex[:8]}"
    async with running_fleet(stack, name, EVENTFLEET_AUTH_LEEWAY_S="0") as p:
        assert p.env["EVENTFLEET_AUTH"] == "jwt"
        yield p


def chromium() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=900,900"):  # fmt: skip
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
        "return [...document.querySelectorAll('#messages li')].map(li => "
        "li.querySelector('.who').dataset.sender + ': ' + li.querySelector('.content').textContent"
        " + (li.querySelector('.edited') ? ' (edited)' : ''))"
    )
    return texts


def reads(browser: Any) -> list[str]:
    texts: list[str] = browser.execute_script(
        "return [...document.querySelectorAll('#reads li')].map(li => li.textContent)"
    )
    return texts


def seen(browser: Any) -> list[str]:
    texts: list[str] = browser.execute_script(
        "return [...document.querySelectorAll('#messages .seen')].map(s => s.textContent)"
    )
    return texts


def click(browser: Any, css: str) -> None:
    browser.execute_script(f"document.querySelector({css!r}).click()")


def text_of(browser: Any, element_id: str) -> str:
    text: str = browser.execute_script(
        f"const e = document.getElementById({element_id!r}); return e.hidden ? '' : e.textContent"
    )
    return text


def say(browser: Any, text: str) -> None:
    box = browser.find_element("id", "text")
    box.clear()
    box.send_keys(text)
    browser.find_element("id", "submit").click()


async def connected(browser: Any) -> None:
    await wait_for(lambda: browser.find_element("tag name", "body").get_attribute("data-live")
                   == "1", timeout_s=30, what="the page's socket open")  # fmt: skip


async def sign_in(browser: Any, url: str, token: str, name: str) -> None:
    """Open the room signed out, take the page's sign-in link, paste the token, come back."""
    browser.get(url)
    await wait_for(lambda: text_of(browser, "signin") != "", timeout_s=30,
                   what="the page offering the sign-in")  # fmt: skip
    assert browser.find_element("id", "status").text == "signed out"
    browser.save_screenshot(f"/tmp/chat-{name}-signed-out.png")
    click(browser, "#sign-in")
    await wait_for(lambda: "/console/login" in browser.current_url, timeout_s=30,
                   what="the console's sign-in")  # fmt: skip
    browser.find_element("id", "token").send_keys(token)
    browser.find_element("id", "sign-in").click()
    await wait_for(lambda: browser.current_url == url, timeout_s=30, what="back in the room")
    await connected(browser)
    assert browser.find_element("id", "who").text == f"signed in as {name}"
    assert not browser.find_elements("id", "me")  # no name to type: the token says who


def tools(browser: Any) -> list[list[str]]:
    """The buttons each message offers, in order."""
    found: list[list[str]] = browser.execute_script(
        "return [...document.querySelectorAll('#messages li')].map(li => "
        "[...li.querySelectorAll('.tools button')].map(b => b.textContent))"
    )
    return found


async def test_two_signed_in_browsers_chat_edit_only_their_own_delete_and_resume(
    fleet: FleetProcess, two: tuple[Any, Any]
) -> None:
    ann, bob = two
    url = f"{fleet.url}/chat/room-{uuid.uuid4().hex[:6]}"
    await sign_in(ann, url, fleet.token("ann", ()), "ann")
    await sign_in(bob, url, fleet.token("bob", ()), "bob")
    styled = ann.execute_script(
        "return getComputedStyle(document.querySelector('header')).backgroundColor"
    )
    assert styled == "rgb(29, 53, 87)", styled  # chat.css applied under the CSP

    say(ann, "hello bob")
    for browser in (ann, bob):
        await wait_for(lambda b=browser: lines(b) == ["ann: hello bob"], timeout_s=30,  # type: ignore[misc]
                       what="ann's message on both pages")  # fmt: skip
    await wait_for(lambda: "bob has read up to “hello bob”" in reads(ann), timeout_s=30,
                   what="bob's read receipt, by name, on ann's page")  # fmt: skip
    await wait_for(lambda: seen(ann) == ["Seen by bob"], timeout_s=30, what="'Seen by bob'")

    click(ann, "#messages li button.edit")
    say(ann, "hello again")
    for browser in (ann, bob):
        await wait_for(lambda b=browser: lines(b) == ["ann: hello again (edited)"], timeout_s=30,  # type: ignore[misc]
                       what="the edit on both pages")  # fmt: skip

    # Only its sender may change a message: ann's page offers her Edit and Delete, bob's none.
    assert tools(ann) == [["Edit", "Delete"]]
    assert tools(bob) == [[]]
    bob.save_screenshot("/tmp/chat-bob-others.png")
    assert lines(bob) == lines(ann) == ["ann: hello again (edited)"]

    say(bob, "hi ann")
    await wait_for(lambda: lines(ann) == ["ann: hello again (edited)", "bob: hi ann"],
                   timeout_s=30, what="bob's message on ann's page")  # fmt: skip
    assert tools(ann) == [["Edit", "Delete"], []] and tools(bob) == [[], ["Edit", "Delete"]]
    await wait_for(lambda: "ann has read up to “hi ann”" in reads(bob), timeout_s=30,
                   what="ann's read receipt on bob's page")  # fmt: skip
    ann.save_screenshot("/tmp/chat-ann.png")
    click(ann, "#messages li.mine button.delete")
    for browser in (ann, bob):
        await wait_for(lambda b=browser: lines(b) == ["bob: hi ann"], timeout_s=30,  # type: ignore[misc]
                       what="the delete on both pages")  # fmt: skip

    version = bob.find_element("tag name", "body").get_attribute("data-version")
    bob.refresh()  # resumes from sessionStorage with after_version and a new ticket
    await connected(bob)
    assert lines(bob) == ["bob: hi ann"]
    assert bob.find_element("tag name", "body").get_attribute("data-version") == version
    say(ann, "still there?")
    await wait_for(lambda: lines(bob) == ["bob: hi ann", "ann: still there?"], timeout_s=30,
                   what="a message after the reload, once")  # fmt: skip
    bob.save_screenshot("/tmp/chat-bob.png")
    page = bob.find_element("tag name", "body").text
    assert "position" not in page and "up_to" not in page  # no jargon, no ids
    for browser in (ann, bob):
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"
                  and "/console/tickets" not in e["message"]]  # fmt: skip
        # No CSP violation, no script error, no favicon refused (every page, the console's
        # login page too, names an icon of its own); the 401s: the page signed out.
        assert not errors, errors


async def test_when_the_sign_in_expires_the_page_says_so_and_signing_in_again_resumes(
    fleet: FleetProcess, two: tuple[Any, Any]
) -> None:
    _, carol = two
    room = f"room-{uuid.uuid4().hex[:6]}"
    url = f"{fleet.url}/chat/{room}"
    carol.get(f"{fleet.url}/console/login")  # where the session cookie is scoped
    carol.delete_all_cookies()  # a new person on this browser
    # The page must be signed in and connected before the expiry: room for four page loads on
    # a loaded machine (20 s were outrun in a full run, 12 s at load 14).
    exp = int(time.time()) + 30
    await sign_in(carol, url, fleet.issuer.token("carol", (), exp=exp), "carol")
    # Carol writes from elsewhere (the API, with a token that lasts) while the page is open:
    # the page shows it before the expiry, or, when its socket closed first, once it resumes.
    sent = {
        "type": "MessageSent",
        "data": {"message_id": "m-before", "sender_id": "carol", "content": "before the expiry"},
    }
    status, _ = await fleet.post(f"/v1/chat_room/{room}/events", sent, token=fleet.token("carol"))
    assert status == 202
    # The socket closes at exp (4401); the page asks for a new ticket with the expired session
    # cookie, is refused, and offers the sign-in again; what it showed stays.
    await wait_for(lambda: text_of(carol, "signin") != "", timeout_s=60,
                   what="the page offering the sign-in after the expiry")  # fmt: skip
    shown = lines(carol)
    assert time.time() >= exp - 1 and carol.find_element("id", "status").text == "signed out"
    assert text_of(carol, "signin").startswith("Your sign-in expired, carol: sign in")
    assert shown in ([], ["carol: before the expiry"]) and text_of(carol, "send") == ""
    carol.save_screenshot("/tmp/chat-carol-expired.png")
    click(carol, "#sign-in")
    await wait_for(lambda: "/console/login" in carol.current_url, timeout_s=30,
                   what="the console's sign-in")  # fmt: skip
    carol.find_element("id", "token").send_keys(fleet.token("carol", ()))
    carol.find_element("id", "sign-in").click()
    await wait_for(lambda: carol.current_url == url, timeout_s=30, what="back in the room")
    await connected(carol)
    say(carol, "after signing in again")
    await wait_for(lambda: lines(carol) == ["carol: before the expiry",
                                            "carol: after signing in again"],
                   timeout_s=30, what="the room resumed, nothing lost, nothing repeated")  # fmt: skip


@pytest.fixture(scope="module")
async def open_fleet(stack: EmbeddedStack) -> AsyncIterator[FleetProcess]:
    async with running_fleet(stack, f"chat_{uuid.uuid4().hex[:8]}", EVENTFLEET_AUTH="none") as p:
        yield p


async def test_with_the_door_open_the_page_asks_for_a_name_and_chats(
    open_fleet: FleetProcess, two: tuple[Any, Any]
) -> None:
    ann, bob = two
    url = f"{open_fleet.url}/chat/room-{uuid.uuid4().hex[:6]}"
    for browser, name in ((ann, "ann"), (bob, "bob")):
        browser.get(url)
        await connected(browser)
        assert "names are not checked" in browser.find_element("tag name", "body").text
        browser.find_element("id", "me").send_keys(name)
    say(ann, "open hello")
    for browser in (ann, bob):
        await wait_for(lambda b=browser: lines(b) == ["ann: open hello"], timeout_s=30,  # type: ignore[misc]
                       what="ann's message on both pages")  # fmt: skip
    await wait_for(lambda: "bob has read up to “open hello”" in reads(ann), timeout_s=30,
                   what="bob's receipt")  # fmt: skip
