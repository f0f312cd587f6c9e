"""Skipping dead letters in the console, alone and in bulk, over HTTP: with the door open
(``EVENTFLEET_AUTH=none``, actions on) the forms ask for the operator's name and the typed name
is what the audit trail records; an empty or unprintable name is refused and nothing changes.
Signed in (the package's fleet, auth jwt), the principal is recorded and a typed name ignored.
"""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.console.conftest import dead_letter_of, poison_order
from tests.fleet import FleetProcess, running_fleet
from tests.tokens import OPERATOR, bearer
from workers.devtools.embedded import EmbeddedStack
from workers.roles.ops.dlq_replay import DeadLetterEntry

pytestmark = pytest.mark.slow

CSRF = {"Cookie": "eventfleet_csrf=c"}
BAD_NAMES = ("", "   ", "ann\tbob", "\u200b")  # empty, blank, a tab, a zero-width space
REFUSED = "operator name must be 1 to"


@pytest.fixture(scope="module")
async def open_fleet(stack: EmbeddedStack) -> AsyncIterator[FleetProcess]:
    env = {"EVENTFLEET_AUTH": "none", "EVENTFLEET_CONSOLE_ACTIONS": "true"}
    async with running_fleet(stack, f"open_{uuid.uuid4().hex[:8]}", **env) as fleet:
        yield fleet


async def send(
    fleet: FleetProcess, method: str, path: str, form: list[tuple[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, str]:  # fmt: skip
    """(status, body) of one console request, a form with the CSRF cookie and field."""
    data = [*(form or []), ("csrf", "c")] if method == "POST" else None
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session,
        session.request(
            method, fleet.url + path, data=data, headers={**CSRF, **(headers or {})},
            allow_redirects=False,
        ) as r,
    ):  # fmt: skip
        return r.status, await r.text()


def form_of(page: str, action: str) -> str:
    """The HTML of the page's form posting to ``action``."""
    start = page.index(f'action="{html.escape(action)}"')
    return page[start : page.index("</form>", start)]


async def letters(fleet: FleetProcess, n: int) -> list[DeadLetterEntry]:
    events = [await poison_order(fleet, f"open-{uuid.uuid4().hex[:6]}") for _ in range(n)]
    return [await dead_letter_of(fleet, event) for event in events]


async def audited(fleet: FleetProcess, entry: DeadLetterEntry) -> list[tuple[str, str]]:
    """(who, action) of every audit row about ``entry``."""
    status, page = await send(fleet, "GET", "/console/audit")
    assert status == 200, page
    rows = re.findall(r"<tr>(.*?)</tr>", page, re.S)
    cells = [re.findall(r"<td>(.*?)</td>", row, re.S) for row in rows]
    return [(html.unescape(c[1]), c[3]) for c in cells if len(c) > 4 and c[4] == entry.position]


async def state_of(fleet: FleetProcess, entry: DeadLetterEntry) -> str:
    status, page = await send(fleet, "GET", f"/console/dlq/{entry.position}")
    assert status == 200, page
    found = re.search(r'<p id="state">(.*?)</p>', page, re.S)
    assert found, page
    return re.sub(r"<[^>]+>", "", found.group(1))


async def test_with_the_door_open_a_skip_records_the_typed_operator(
    open_fleet: FleetProcess,
) -> None:
    (entry,) = await letters(open_fleet, 1)
    skip = f"/console/dlq/{entry.position}/skip"
    status, page = await send(open_fleet, "GET", f"/console/dlq/{entry.position}")
    assert status == 200 and 'name="operator"' in form_of(page, skip), page
    for bad in BAD_NAMES:
        status, page = await send(open_fleet, "POST", skip, [("operator", bad)])
        assert status == 400 and REFUSED in html.unescape(page), (bad, status, page)
    status, page = await send(open_fleet, "POST", skip, [])  # no field at all
    assert status == 400 and REFUSED in html.unescape(page), page
    assert await state_of(open_fleet, entry) == "new"
    assert await audited(open_fleet, entry) == []

    status, page = await send(open_fleet, "POST", skip, [("operator", " ann ")])
    assert status == 200 and f"{entry.position} skipped by ann" in page, page
    assert (await state_of(open_fleet, entry)).startswith("skipped by ann at")
    assert await audited(open_fleet, entry) == [("ann", "dlq_skip")]


async def test_with_the_door_open_a_bulk_action_records_the_typed_operator(
    open_fleet: FleetProcess,
) -> None:
    skipped, replayed = await letters(open_fleet, 2)
    status, page = await send(open_fleet, "GET", "/console/dlq")
    assert status == 200 and 'name="operator"' in form_of(page, "/console/dlq/bulk/review"), page
    ticked = [("action", "skip"), ("entry", skipped.position)]
    for path in ("/console/dlq/bulk/review", "/console/dlq/bulk/confirm"):
        for bad in BAD_NAMES:
            status, page = await send(open_fleet, "POST", path, [*ticked, ("operator", bad)])
            assert status == 400 and REFUSED in html.unescape(page), (path, bad, status, page)
    assert await state_of(open_fleet, skipped) == "new"
    assert await audited(open_fleet, skipped) == []

    status, page = await send(
        open_fleet, "POST", "/console/dlq/bulk/review", [*ticked, ("operator", "bea")]
    )
    assert status == 200 and "as <strong>bea</strong>" in page, page
    carried = form_of(page, "/console/dlq/bulk/confirm")
    fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', carried)
    assert ("operator", "bea") in fields and ("entry", skipped.position) in fields, carried
    assert await state_of(open_fleet, skipped) == "new"  # nothing before the confirm
    status, page = await send(
        open_fleet, "POST", "/console/dlq/bulk/confirm", [(k, v) for k, v in fields if k != "csrf"]
    )
    assert status == 200 and 'id="bulk-outcome"' in page and "skipped" in page, page
    assert (await state_of(open_fleet, skipped)).startswith("skipped by bea at")
    assert await audited(open_fleet, skipped) == [("bea", "dlq_skip")]

    # A bulk replay (as it was: refused by the command path, still audited) as the typed name.
    again = [("action", "replay"), ("entry", replayed.position), ("operator", "cid")]
    status, page = await send(open_fleet, "POST", "/console/dlq/bulk/confirm", again)
    assert status == 200 and 'id="bulk-outcome"' in page, page
    assert await audited(open_fleet, replayed) == [("cid", "dlq_replay")]


async def test_signed_in_the_principal_is_recorded_and_no_name_is_asked(
    console_fleet: FleetProcess,
) -> None:
    (entry,) = await letters(console_fleet, 1)
    olga = bearer(console_fleet.token("olga", [OPERATOR]))
    skip = f"/console/dlq/{entry.position}/skip"
    status, page = await send(console_fleet, "GET", f"/console/dlq/{entry.position}", headers=olga)
    assert status == 200 and 'name="operator"' not in page, page
    status, page = await send(console_fleet, "GET", "/console/dlq", headers=olga)
    assert status == 200 and 'name="operator"' not in page, page
    status, page = await send(console_fleet, "POST", skip, [("operator", "mallory")], olga)
    assert status == 200 and f"{entry.position} skipped by olga" in page, page
