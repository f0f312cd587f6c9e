"""Process managers on the real services (issue 47): one fleet (``--role all`` with process
managers, so the pm role runs in it) for the module. A paid order's shipment is requested once,
an unpaid order is cancelled once by its deadline, a cancelled deadline never fires; the API and
the CLI show instances and deadlines; a refused command sticks the instance until a retry after
the fix; hostile input on every new route and parameter is a clear 4xx that writes nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import orjson
import pytest
from openapi_spec_validator import validate

from tests.cli import eventfleet
from tests.e2e.pm_domains import PAYMENT_S
from tests.e2e.pm_fleet import (
    PROCESSES,
    history,
    instances_of,
    pay,
    place,
    types_of,
    until_instance,
    until_stored,
)
from tests.fleet import FleetProcess, running_fleet
from tests.tokens import OPERATOR, VIEWER, bearer
from tests.waiting import wait_for
from workers.devtools.embedded import EmbeddedStack
from workers.ports import ACTIVE, DONE, STUCK

LIFECYCLE = "/v1/processes/order_lifecycle"
DELIVERER = "/v1/processes/deliverer"


@pytest.fixture(scope="module")
async def fleet(stack: EmbeddedStack) -> AsyncIterator[FleetProcess]:
    actions = {"EVENTFLEET_CONSOLE_ACTIONS": "true"}
    async with running_fleet(
        stack, f"pm_{uuid.uuid4().hex[:8]}", **PROCESSES, **actions
    ) as process:
        yield process


def uid() -> str:
    return uuid.uuid4().hex[:8]


async def test_a_paid_order_ships_once_an_unpaid_one_is_cancelled_once_a_cancelled_never(
    fleet: FleetProcess, stack: EmbeddedStack
) -> None:
    paid, kept, unpaid = f"paid-{uid()}", f"kept-{uid()}", f"unpaid-{uid()}"
    await place(fleet, paid)
    await pay(fleet, paid)
    await place(fleet, kept)
    status, _ = await fleet.post(f"/v1/order/{kept}/events",
                                 {"type": "OrderCancelled", "data": {"reason": "changed mind"}})  # fmt: skip
    assert status == 202
    await place(fleet, unpaid)  # placed last: due last, after the others would have been
    await until_stored(fleet, "shipment", paid, ["ShipmentRequested"])
    await until_stored(fleet, "order", unpaid, ["OrderPlaced", "OrderCancelled"],
                       timeout_s=PAYMENT_S + 30)  # fmt: skip
    cancel = (await history(fleet, "order", unpaid))[1]
    assert cancel["metadata"]["actor"] == {"principal": "pm:order_lifecycle",
                                           "roles": ["fulfilment"]}  # fmt: skip
    assert cancel["data"] == {"reason": "payment deadline passed"}
    assert cancel["metadata"]["command_id"].startswith("pm:order_lifecycle:dl:")
    async with instances_of(stack, fleet.env["EVENTFLEET_MONGO_DATABASE"]) as store:
        ended = await until_instance(store, "order_lifecycle", unpaid, status=DONE)
        (fired,) = ended.fired
        assert fired.fired_at >= fired.due_at
        shipped = await until_instance(store, "order_lifecycle", paid)
        assert shipped.deadlines == () and shipped.fired == ()
        assert (await until_instance(store, "order_lifecycle", kept, status=DONE)).fired == ()
    # The unpaid order's deadline was due last: the others' would have fired before it.
    assert await types_of(fleet, "order", paid) == ["OrderPlaced", "OrderPaid"]
    assert await types_of(fleet, "order", kept) == ["OrderPlaced", "OrderCancelled"]
    assert len(await history(fleet, "shipment", paid)) == 1
    status, shown = await fleet.get(f"{LIFECYCLE}/instances/{unpaid}")
    assert status == 200 and shown["status"] == DONE and shown["fired"][0]["name"] == "payment"
    assert shown["fired"][0]["late_s"] < PAYMENT_S  # fired within its bound, not much later


async def test_the_api_lists_pages_and_shows_instances_and_their_deadlines(
    fleet: FleetProcess,
) -> None:
    orders = [f"list-{uid()}" for _ in range(3)]
    for order in orders:
        await place(fleet, order)
    status, listed = await fleet.get("/v1/processes")
    assert status == 200
    names = {p["name"]: p for p in listed["processes"]}
    assert names["order_lifecycle"]["principal"] == "pm:order_lifecycle"
    assert names["order_lifecycle"]["starts_on"] == ["order.OrderPlaced"]
    assert "shipment.ShipmentRequested" in names["order_lifecycle"]["sends"]

    async def deadlines() -> list[Any]:
        _, body = await fleet.get(f"{LIFECYCLE}/deadlines?limit=500")
        return [d for d in body["deadlines"] if d["key"] in orders]

    async def listed_all() -> bool:
        return len(await deadlines()) == 3

    await wait_for(listed_all, timeout_s=30, interval_s=0.1, what="three pending deadlines")
    pending = await deadlines()
    assert [d["name"] for d in pending] == ["payment"] * 3
    # By time, and as text too: every time carries six digits of fraction (topics.envelope.utc_text).
    assert pending == sorted(pending, key=lambda d: datetime.fromisoformat(d["due_at"]))
    assert pending == sorted(pending, key=lambda d: d["due_at"])
    first, second = sorted(orders)[:2]
    status, page = await fleet.get(f"{LIFECYCLE}/instances?status=active&after=list-&limit=1")
    assert status == 200 and page["more"] is True and len(page["instances"]) == 1
    status, page = await fleet.get(f"{LIFECYCLE}/instances?after={first}&limit=1")
    assert page["instances"][0]["key"] == second
    status, one = await fleet.get(f"{LIFECYCLE}/instances/{first}")
    assert status == 200 and one["status"] == ACTIVE and one["deadlines"][0]["name"] == "payment"
    viewer = fleet.token("watcher", (VIEWER,))
    assert (await fleet.get(f"{LIFECYCLE}/instances/{first}", token=viewer))[0] == 200
    nobody = fleet.token("nobody", ())
    for path in ("/v1/processes", f"{LIFECYCLE}/instances", f"{LIFECYCLE}/instances/{first}",
                 f"{LIFECYCLE}/deadlines"):  # fmt: skip
        status, refused = await fleet.get(path, token=nobody)
        assert (status, refused["error"]) == (403, "forbidden"), path


async def test_a_refused_command_sticks_its_instance_until_a_retry_after_the_fix(
    fleet: FleetProcess, stack: EmbeddedStack
) -> None:
    order = f"deliver-{uid()}"
    await place(fleet, order)
    await pay(fleet, order)  # the deliverer sends OrderDelivered: not before OrderShipped
    async with instances_of(stack, fleet.env["EVENTFLEET_MONGO_DATABASE"]) as store:
        stuck = await until_instance(store, "deliverer", order, status=STUCK)
        assert stuck.stuck is not None and stuck.stuck.reason == "command_refused"
        assert "transition_rejected" in stuck.stuck.detail
        status, refused = await fleet.post(f"{DELIVERER}/instances/{order}/retry",
                                           token=fleet.token("watcher", (VIEWER,)))  # fmt: skip
        assert (status, refused["error"]) == (403, "forbidden")
        status, asked = await fleet.post(f"{DELIVERER}/instances/{order}/retry")  # not fixed yet
        assert status == 202 and asked["status"] == "retrying"
        again = await until_instance(store, "deliverer", order, status=STUCK, retries=1)
        assert again.stuck is not None and again.stuck.attempts == 2
        shipped = await fleet.post(f"/v1/order/{order}/events",
                                   {"type": "OrderShipped", "data": {"carrier": "dhl"}})  # fmt: skip
        assert shipped[0] == 202
        await until_stored(fleet, "order", order, ["OrderPlaced", "OrderPaid", "OrderShipped"])
        status, asked = await fleet.post(f"{DELIVERER}/instances/{order}/retry")
        assert status == 202
        await until_stored(fleet, "order", order,
                           ["OrderPlaced", "OrderPaid", "OrderShipped", "OrderDelivered"])  # fmt: skip
        fixed = await until_instance(store, "deliverer", order, status=ACTIVE, outbox=())
        assert fixed.outbox == () and fixed.stuck is None
    status, body = await fleet.post(f"{DELIVERER}/instances/{order}/retry")
    assert (status, body["error"], body["instance_status"]) == (409, "instance_not_stuck", ACTIVE)
    code, out, _ = await eventfleet(
        "dlq", "list", "--reason", "process_stuck", "--json", env=fleet.env
    )
    letters = [e for e in orjson.loads(out) if e["key"] == order]
    assert code == 0 and len(letters) == 2 and all(e["role"] == "pm" for e in letters)


async def test_the_cli_lists_shows_and_retries(fleet: FleetProcess, stack: EmbeddedStack) -> None:
    order = f"deliver-{uid()}"
    await place(fleet, order)
    await pay(fleet, order)
    async with instances_of(stack, fleet.env["EVENTFLEET_MONGO_DATABASE"]) as store:
        await until_instance(store, "deliverer", order, status=STUCK)
    code, out, err = await eventfleet("pm", "list", env=fleet.env)
    assert code == 0 and "order_lifecycle" in out and "deliverer" in out, err
    code, out, err = await eventfleet("pm", "list", "deliverer", "--status", "stuck",
                                      "--json", env=fleet.env)  # fmt: skip
    assert code == 0 and order in [i["key"] for i in orjson.loads(out)["instances"]], err
    code, out, err = await eventfleet("pm", "show", "deliverer", order, "--json", env=fleet.env)
    assert code == 0 and orjson.loads(out)["stuck"]["reason"] == "command_refused", err
    code, out, err = await eventfleet("pm", "deadlines", "order_lifecycle", "--json", env=fleet.env)
    assert code == 0 and isinstance(orjson.loads(out), list), err
    retry = ("pm", "retry", "deliverer", order, "--operator", "ada", "--wait", "20")
    code, out, err = await eventfleet(*retry, env=fleet.env)
    assert code == 1 and "stuck (command_refused" in out, (out, err)  # not fixed: stuck again
    code, _, err = await eventfleet("pm", "show", "nobody", order, env=fleet.env)
    assert code == 1 and "no process manager is named 'nobody'" in err
    code, _, err = await eventfleet(
        "pm", "retry", "deliverer", "a b", "--operator", "x", env=fleet.env
    )
    assert code == 2 and "must match" in err
    code, _, err = await eventfleet("pm", "retry", "deliverer", f"none-{uid()}",
                                    "--operator", "ada", env=fleet.env)  # fmt: skip
    assert code == 1 and "has no instance" in err


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("GET", "/v1/processes/Bad-Name/instances", None, 400, "bad_request"),
        ("GET", "/v1/processes/nobody/instances", None, 404, "not_found"),
        ("GET", "/v1/processes/nobody/deadlines", None, 404, "not_found"),
        ("GET", "/v1/processes/nobody/instances/k1", None, 404, "not_found"),
        ("GET", f"{LIFECYCLE}/instances/a%20b", None, 400, "bad_request"),
        ("GET", f"{LIFECYCLE}/instances/{'k' * 129}", None, 400, "bad_request"),
        ("GET", f"{LIFECYCLE}/instances/missing-one", None, 404, "not_found"),
        ("GET", f"{LIFECYCLE}/instances?status=lost", None, 400, "bad_request"),
        ("GET", f"{LIFECYCLE}/instances?limit=0", None, 400, "bad_request"),
        ("GET", f"{LIFECYCLE}/instances?limit=501", None, 400, "bad_request"),
        ("GET", f"{LIFECYCLE}/instances?limit=ten", None, 400, "bad_request"),
        ("GET", f"{LIFECYCLE}/instances?after=", None, 400, "bad_request"),
        ("GET", f"{LIFECYCLE}/instances?after=a%20b", None, 400, "bad_request"),
        ("GET", f"{LIFECYCLE}/instances?limit=1&limit=2", None, 400, "bad_request"),
        ("GET", f"{LIFECYCLE}/deadlines?limit=99999999999999999999999", None, 400, "bad_request"),
        ("POST", f"{LIFECYCLE}/instances/a%20b/retry", b"", 400, "bad_request"),
        ("POST", "/v1/processes/nobody/instances/k1/retry", b"", 404, "not_found"),
        ("POST", f"{LIFECYCLE}/instances/missing-one/retry", b"", 404, "not_found"),
        ("POST", f"{LIFECYCLE}/instances/TARGET/retry", b"[1]", 400, "bad_request"),
        ("POST", f"{LIFECYCLE}/instances/TARGET/retry", b"{nope", 400, "bad_request"),
        ("POST", f"{LIFECYCLE}/instances/TARGET/retry", b'{"force": true}', 400, "bad_request"),
        ("POST", f"{LIFECYCLE}/instances/TARGET/retry", b" " * 70_000, 413, "payload_too_large"),
        ("POST", f"{LIFECYCLE}/instances/TARGET/retry", b"", 409, "instance_not_stuck"),
        ("PUT", f"{LIFECYCLE}/instances/TARGET/retry", b"", 405, "method_not_allowed"),
    ],
)
async def test_hostile_input_is_a_clear_4xx_and_changes_nothing(
    fleet: FleetProcess, stack: EmbeddedStack, method: str, path: str, body: bytes | None,
    status: int, code: str,
) -> None:  # fmt: skip
    target = f"target-{uid()}"
    await place(fleet, target)
    async with instances_of(stack, fleet.env["EVENTFLEET_MONGO_DATABASE"]) as store:
        before = await until_instance(store, "order_lifecycle", target)
        got, answer = await fleet.request(method, path.replace("TARGET", target), raw=body)
        assert (got, answer["error"]) == (status, code), answer
        assert len(answer["message"]) > 20 and answer["message"].endswith((".", ")")), answer
        after = (await store.load("order_lifecycle", [target]))[target]
        assert (after.revision, after.status) == (before.revision, before.status)


async def test_a_retry_from_another_site_or_of_another_type_writes_nothing(
    fleet: FleetProcess,
) -> None:
    path = f"{LIFECYCLE}/instances/x1/retry"
    headers = {**bearer(fleet.token()), "Origin": "https://evil.example"}
    status, body = await fleet.request("POST", path, raw=b"{}", headers=headers)
    assert (status, body["error"]) == (403, "cross_origin")
    headers = {**bearer(fleet.token()), "Content-Type": "text/plain"}
    status, body = await fleet.request("POST", path, raw=b"{}", headers=headers)
    assert (status, body["error"]) == (415, "unsupported_media_type")
    status, body = await fleet.request("POST", path, raw=b"{}",
                                       headers={"Content-Type": "application/json"})  # fmt: skip
    assert (status, body["error"]) == (401, "unauthenticated")
    operator = fleet.token("op", (OPERATOR,))
    status, body = await fleet.post(path, token=operator)
    assert (status, body["error"]) == (404, "not_found")


async def test_the_fleet_documents_every_process_route_it_serves(fleet: FleetProcess) -> None:
    status, doc = await fleet.get("/openapi.json")
    assert status == 200
    validate(doc)
    documented = {op["x-route"] for item in doc["paths"].values() for op in item.values()}
    for route in ("/v1/processes", "/v1/processes/{process}/instances",
                  "/v1/processes/{process}/instances/{key}", "/v1/processes/{process}/deadlines",
                  "/v1/processes/{process}/instances/{key}/retry"):  # fmt: skip
        assert route in documented, route
    retry = doc["paths"]["/v1/processes/{process}/instances/{key}/retry"]["post"]
    assert "409" in retry["responses"] and "202" in retry["responses"]


FORM = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": "eventfleet_csrf=c"}


async def test_the_console_lists_shows_and_retries_a_stuck_instance(
    fleet: FleetProcess, stack: EmbeddedStack
) -> None:
    order = f"deliver-{uid()}"
    await place(fleet, order)
    await pay(fleet, order)
    async with instances_of(stack, fleet.env["EVENTFLEET_MONGO_DATABASE"]) as store:
        await until_instance(store, "deliverer", order, status=STUCK)
        status, page = await fleet.get("/console/processes")
        assert status == 200 and "order_lifecycle" in page and "deliverer" in page
        status, page = await fleet.get("/console/processes/deliverer?status=stuck")
        assert status == 200 and order in page
        status, page = await fleet.get(f"/console/processes/deliverer/{order}")
        assert status == 200 and 'id="stuck"' in page and "command_refused" in page
        assert 'id="retry"' in page
        path = f"/console/processes/deliverer/{order}/retry"
        refused, _ = await fleet.request("POST", path, raw=b"csrf=wrong",
                                         headers={**bearer(fleet.token()), **FORM})  # fmt: skip
        assert refused == 403
        assert (await store.load("deliverer", [order]))[order].status == STUCK
        status, page = await fleet.request("POST", path, raw=b"csrf=c",
                                           headers={**bearer(fleet.token()), **FORM})  # fmt: skip
        assert status == 202 and 'id="outcome"' in page
        await until_instance(store, "deliverer", order, status=STUCK, retries=1)
    for bad, code in (("/console/processes/Bad-Name", 400), ("/console/processes/nobody", 404),
                      (f"/console/processes/deliverer/{uid()}", 404),
                      ("/console/processes/deliverer?status=lost", 400)):  # fmt: skip
        status, page = await fleet.get(bad)
        assert status == code and 'id="error"' in page, bad
