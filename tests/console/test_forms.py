"""Console forms read whole (``workers/runtime/bodies.read_form``): a sign-in whose form arrives
chunked in two parts signs in, a form over EVENTFLEET_MAX_BODY_BYTES is 413, and an action whose
body is not a form is 415 — raw bytes on a socket, on the package's fleet (auth jwt, actions on).
"""

from __future__ import annotations

from urllib.parse import urlencode

from tests.e2e.raw_http import MAX_BODY_BYTES, chunked, post_in_writes
from tests.fleet import FleetProcess
from tests.tokens import OPERATOR, bearer

FORM = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": "eventfleet_csrf=c"}


async def test_a_sign_in_whose_form_arrives_in_two_parts_signs_in(
    console_fleet: FleetProcess,
) -> None:
    form = urlencode({"token": console_fleet.token(), "csrf": "c", "next": "/console"}).encode()
    head = {**FORM, "Transfer-Encoding": "chunked"}
    status, _ = await post_in_writes(
        console_fleet, "/console/login", head, chunked(form[:40], form[40:])
    )
    assert status == 303  # signed in: the CSRF field came in the second part
    wrong = urlencode({"token": "x.y.z", "csrf": "c"}).encode()
    status, page = await post_in_writes(
        console_fleet, "/console/login", head, chunked(wrong[:5], wrong[5:])
    )
    assert status == 401 and "not signed in" in page


async def test_oversized_and_non_form_bodies_are_refused_before_any_action(
    console_fleet: FleetProcess,
) -> None:
    operator = bearer(console_fleet.token("op", [OPERATOR]))
    path = "/console/dlq/bulk/review"
    big = urlencode({"csrf": "c", "submission": "x" * MAX_BODY_BYTES}).encode()
    head = {**operator, **FORM, "Transfer-Encoding": "chunked"}
    status, answer = await post_in_writes(
        console_fleet, path, head, chunked(big[:1000], big[1000:])
    )
    assert (status, answer["error"]) == (413, "payload_too_large"), answer
    for kind in ("text/plain", "application/json", "multipart/form-data; boundary=x"):
        head = {**operator, **FORM, "Content-Type": kind, "Content-Length": "6"}
        # The body with the head: answered from the head alone, a body arriving after the
        # answer would meet a closed socket, whose reset can destroy the answer unread.
        status, answer = await post_in_writes(
            console_fleet, path, head, [b"csrf=c"], with_head=True
        )
        assert (status, answer["error"]) == (415, "unsupported_media_type"), (kind, answer)
