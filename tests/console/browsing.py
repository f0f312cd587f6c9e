"""The console in headless Chromium as its tests drive it: signing in through the login form,
waiting for the page a click loaded, and reading the texts of the elements a CSS selector
finds. The browser itself is the ``browser`` fixture of ``tests/console/conftest.py``."""

from __future__ import annotations

from typing import Any

from selenium.webdriver.support.ui import WebDriverWait

from tests.fleet import FleetProcess
from tests.tokens import TESTER, TESTER_ROLES


def after_submit(browser: Any, *ids: str) -> Any:
    """The first of ``ids`` on the page a click loaded (a click does not wait for it)."""

    def found(driver: Any) -> Any:
        for ident in ids:
            elements = driver.find_elements("id", ident)
            if elements:
                return elements[0]
        return False

    return WebDriverWait(browser, 30, poll_frequency=0.05).until(
        found, message=f"none of {ids} appeared"
    )


def sign_in(
    browser: Any, fleet: FleetProcess, sub: str = TESTER, roles: Any = TESTER_ROLES
) -> None:
    """Sign in through the login form: the token goes into the session cookie."""
    browser.get(fleet.url + "/console/login")  # cookies are cleared per site: be on it
    browser.delete_all_cookies()
    browser.get(fleet.url + "/console")
    assert "/console/login" in browser.current_url, "a browser without a session signs in"
    browser.find_element("id", "token").send_keys(fleet.token(sub, roles))
    browser.find_element("id", "sign-in").click()
    WebDriverWait(browser, 30).until(
        lambda d: "/console/login" not in d.current_url,
        message=f"not signed in: {browser.page_source}",
    )


def texts(browser: Any, css: str) -> list[str]:
    """The text of each element ``css`` selects on the current page, in page order."""
    return [e.text for e in browser.find_elements("css selector", css)]
