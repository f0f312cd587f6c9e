"""Who may use the console, from outside: the role matrix, CSRF, sign-in, security headers.

Runs on the package's fleet with console actions on and auth on (``tests.tokens``): every
page and action is tried with no token, with no role, as a viewer and as an operator.
"""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from selenium.webdriver.support.ui import WebDriverWait

from tests.console.browsing import sign_in
from tests.console.conftest import dead_letter_of, poison_order
from tests.console.http_calls import as_, call
from tests.fleet import FleetProcess
from tests.hostile_tokens import tampered
from tests.tokens import OPERATOR, VIEWER
from workers.roles.ops.dlq_replay import DeadLetterEntry

PAGES = ("/console", "/console/types/order", "/console/dlq", "/console/audit", "/console/lag",
         "/console/api")  # fmt: skip


@pytest.fixture(scope="module")
async def entry(console_fleet: FleetProcess) -> DeadLetterEntry:
    order_id = f"acl-{uuid.uuid4().hex[:8]}"
    return await dead_letter_of(console_fleet, await poison_order(console_fleet, order_id))


async def test_the_role_matrix_of_every_console_page_and_action(
    console_fleet: FleetProcess, entry: DeadLetterEntry
) -> None:
    fleet = console_fleet
    pages = (*PAGES, f"/console/dlq/{entry.position}", "/console/aggregates/order/none")
    matrix: dict[str, dict[str, int]] = {}
    for who, headers in (
        ("no token", {}), ("no role", as_(fleet)), ("viewer", as_(fleet, VIEWER)),
        ("operator", as_(fleet, OPERATOR)),
    ):  # fmt: skip
        for path in pages:
            status, _, _ = await call(fleet, "GET", path, headers=headers)
            matrix.setdefault(path, {})[who] = status
        for step in ("confirm", "replay"):
            path = f"/console/dlq/{entry.position}/{step}"
            sent = {**headers, "Cookie": "eventfleet_csrf=c"}
            status, body, _ = await call(fleet, "POST", path, headers=sent, form={"csrf": "c"})
            matrix.setdefault(f"POST {step}", {})[who] = status
            if who in ("no role", "viewer"):
                assert '"reason":"role_required"' in body, (who, step, body)
    for path in pages:
        expected_read = 404 if path.endswith("/none") else 200  # no such order: its 404 page
        assert matrix[path] == {
            "no token": 303,
            "no role": 403,
            "viewer": expected_read,
            "operator": expected_read,
        }, (path, matrix[path])  # fmt: skip  (a browser without a session: to the login page)
    for step in ("POST confirm", "POST replay"):
        # The operator passes the door and the CSRF check; the empty form is then refused.
        assert matrix[step] == {"no token": 401, "no role": 403, "viewer": 403, "operator": 400}


async def test_csrf_tokens_missing_or_wrong_are_refused(
    console_fleet: FleetProcess, entry: DeadLetterEntry
) -> None:
    path = f"/console/dlq/{entry.position}/confirm"
    operator = as_(console_fleet, OPERATOR)
    for cookie, field in (("", ""), ("c", ""), ("", "c"), ("c", "d"), ("c", "c" * 200)):
        headers = {**operator, **({"Cookie": f"eventfleet_csrf={cookie}"} if cookie else {})}
        form = {"submission": "{}", **({"csrf": field} if field else {})}
        status, body, _ = await call(console_fleet, "POST", path, headers=headers, form=form)
        assert status == 403 and '"reason":"csrf_token"' in body, (cookie, field, body)
    # The token a page hands out is the one its form must carry back.
    status, page, headers = await call(
        console_fleet, "GET", f"/console/dlq/{entry.position}", headers=operator
    )
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert status == 200 and token is not None
    assert f"eventfleet_csrf={token.group(1)}" in headers["Set-Cookie"]
    assert "HttpOnly" in headers["Set-Cookie"] and "SameSite=Strict" in headers["Set-Cookie"]


async def test_every_answer_carries_the_security_headers(
    console_fleet: FleetProcess, entry: DeadLetterEntry
) -> None:
    operator = as_(console_fleet, OPERATOR)
    paths = (*PAGES, f"/console/dlq/{entry.position}", "/console/login", "/console/nope",
             "/console/static/console.css", "/v1/order/o-1/state")  # fmt: skip
    for path in paths:
        for headers in ({}, operator):
            _, text, answer = await call(console_fleet, "GET", path, headers=headers)
            csp = answer["Content-Security-Policy"]
            assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp, path
            assert "unsafe-inline" not in csp and "script-src" not in csp, path
            assert answer["X-Content-Type-Options"] == "nosniff", path
            assert answer["Referrer-Policy"] == "same-origin", path
            assert answer["X-Frame-Options"] == "DENY", path
            if answer.get("Content-Type", "").startswith("text/html"):
                assert "<script" not in text and "<style" not in text and " style=" not in text


async def test_sign_in_sets_a_strict_httponly_cookie_and_bad_tokens_stay_out(
    console_fleet: FleetProcess,
) -> None:
    status, _, headers = await call(console_fleet, "GET", "/console/dlq?reason=x")
    location = urlsplit(headers["Location"])
    assert status == 303 and location.path == "/console/login"
    assert parse_qs(location.query)["next"] == ["/console/dlq?reason=x"]
    status, page, headers = await call(console_fleet, "GET", "/console/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert status == 200 and csrf is not None
    assert "(actions enabled)" in page and "read-only" not in page  # as the console it opens
    cookie = {"Cookie": f"eventfleet_csrf={csrf.group(1)}"}
    form = {"csrf": csrf.group(1), "next": "//evil.example/x"}
    for token, reason in (
        ("garbage", "malformed_token"),
        (tampered(console_fleet.token("x", ())), "bad_signature"),
    ):
        status, page, _ = await call(
            console_fleet, "POST", "/console/login", headers=cookie, form={**form, "token": token}
        )
        assert status == 401 and reason in page, page
    token = console_fleet.token("vera", [VIEWER])
    status, _, headers = await call(
        console_fleet, "POST", "/console/login", headers=cookie, form={**form, "token": token}
    )
    assert status == 303 and headers["Location"] == "/console"  # never another site
    session = headers["Set-Cookie"]
    assert "eventfleet_session=" in session and "HttpOnly" in session
    assert "SameSite=Strict" in session and "Path=/console" in session
    status, _, _ = await call(
        console_fleet, "POST", "/console/login", form={**form, "token": token}
    )
    assert status == 403  # no CSRF cookie: refused
    # The cookie is read under /console only: the API wants its bearer header.
    status, _, _ = await call(
        console_fleet,
        "GET",
        "/v1/order/o-1/state",
        headers={"Cookie": f"eventfleet_session={token}"},
    )
    assert status == 401


async def test_a_viewer_reads_but_cannot_replay_in_the_browser(
    console_fleet: FleetProcess, entry: DeadLetterEntry, browser: Any
) -> None:
    sign_in(browser, console_fleet, "vera", [VIEWER])
    browser.get(f"{console_fleet.url}/console/dlq/{entry.position}")
    assert "signed in as vera" in browser.find_element("id", "who").text
    browser.find_element("id", "review").click()
    WebDriverWait(browser, 30).until(lambda d: "role_required" in d.page_source)
    assert "eventfleet-operator" in browser.page_source
    browser.get(console_fleet.url + "/console/audit")
    assert browser.find_elements("id", "audit")
    browser.find_element("id", "sign-out").click()
    WebDriverWait(browser, 30).until(lambda d: "/console/login" in d.current_url)
    browser.get(console_fleet.url + "/console/audit")
    assert "/console/login" in browser.current_url
