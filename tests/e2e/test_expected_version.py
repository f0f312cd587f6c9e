"""Appends with an expected version on the real services (issue 47): both modes, exact, stale
and absent expectations, malformed values, the commands topic, concurrent appends with one
expectation, and retries of a command answered as the original was.

One fleet of every role serves the module, with every example domain: the cart (async) and the
account (sync). The faults (two commands processes, lost marks, a stalled appender) are in
``test_expected_version_at_fault.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from tests.auditing import audit, errors
from tests.e2e.expecting import (
    ALL_DOMAINS,
    DEPOSIT,
    ITEM,
    STALE,
    one_stored_per_round,
    race,
    refused_truly,
    send,
    stored_versions,
)
from tests.fleet import FleetProcess, running_fleet
from tests.kafka_topics import produce_raw, read_until
from tests.waiting import wait_for
from workers.devtools.embedded import EmbeddedStack
from workers.examples.domains import all_domains


@pytest.fixture(scope="module")
async def fleet(stack: EmbeddedStack) -> AsyncIterator[FleetProcess]:
    async with running_fleet(stack, f"ev_{uuid.uuid4().hex[:8]}", **ALL_DOMAINS) as process:
        yield process


def db(fleet: FleetProcess) -> str:
    return fleet.env["EVENTFLEET_MONGO_DATABASE"]


def uid() -> str:
    return uuid.uuid4().hex[:8]


async def opened_cart(fleet: FleetProcess, stack: EmbeddedStack) -> str:
    cart = f"c-{uid()}"
    body = {"type": "CartOpened", "data": {"customer_id": "u1"}, "expected_version": 0}
    status, answer = await fleet.post(f"/v1/cart/{cart}/events", body)
    assert status == 202, answer

    async def stored() -> bool:
        return len(await stored_versions(stack, db(fleet), "cart", cart)) == 1

    await wait_for(stored, timeout_s=30, what="the cart opened")
    return cart


async def test_async_exact_stale_and_absent_expectations(
    fleet: FleetProcess, stack: EmbeddedStack
) -> None:
    cart = await opened_cart(fleet, stack)
    path = f"/v1/cart/{cart}/events"
    added = await send(fleet, path, {**ITEM, "expected_version": 1, "command_id": "add-1"})
    assert added.status == 202, added
    stale = await send(fleet, path, {**ITEM, "expected_version": 1, "command_id": "add-2"})
    # Answered once the store has decided add-1: it holds version 2, so 1 is stale for good.
    assert refused_truly(stale, expected=1), stale
    assert f"cart {cart} is at version 2, not at the expected 1" in stale.body["message"]
    exists = await send(fleet, path, {**ITEM, "expected_version": 0})
    assert (exists.status, exists.body["error"], exists.body["current_version"]) == (409, STALE, 2)
    assert "exists already" in exists.body["message"]
    ahead = await send(fleet, path, {**ITEM, "expected_version": 9})
    assert (ahead.status, ahead.body["current_version"]) == (409, 2)
    assert "not yet at the expected 9" in ahead.body["message"]
    absent = await send(fleet, path, ITEM)
    assert absent.status == 202

    async def three() -> bool:
        return len(await stored_versions(stack, db(fleet), "cart", cart)) == 3

    await wait_for(three, timeout_s=30, what="the unchecked append stored")
    history = await stored_versions(stack, db(fleet), "cart", cart)
    assert [(v, e) for v, e, _ in history] == [(1, 0), (2, 1), (3, None)]
    assert history[1][2] == added.body["event_id"]


async def test_sync_exact_stale_and_absent_expectations(fleet: FleetProcess) -> None:
    account = f"a-{uid()}"
    path = f"/v1/account/{account}/events"
    opened = await send(fleet, path, {"type": "AccountOpened", "data": {"owner": "ann"},
                                      "expected_version": 0})  # fmt: skip
    assert (opened.status, opened.body["version"]) == (201, 1), opened
    deposited = await send(fleet, path, {**DEPOSIT, "expected_version": 1})
    assert (deposited.status, deposited.body["version"]) == (201, 2)
    stale = await send(fleet, path, {**DEPOSIT, "expected_version": 1})
    assert refused_truly(stale, expected=1), stale
    new = await send(fleet, f"/v1/account/b-{uid()}/events", {**DEPOSIT, "expected_version": 3})
    assert (new.status, new.body["error"], new.body["current_version"]) == (409, STALE, 0)
    assert "does not exist yet" in new.body["message"]
    absent = await send(fleet, path, DEPOSIT)
    assert (absent.status, absent.body["version"]) == (201, 3)


@pytest.mark.parametrize(
    "raw",
    [b"-1", b"1.5", b"2.0", b"1e2", b"true", b"false", b'"1"', b'"one"', b"[1]", b'{"$gt": 0}',
     b"9223372036854775808", b"18446744073709551617", b"1" * 60],
)  # fmt: skip
async def test_a_malformed_expected_version_is_a_400_and_writes_nothing(
    fleet: FleetProcess, raw: bytes
) -> None:
    for kind, body in (("cart", b'{"type": "CartOpened", "data": {"customer_id": "u"}'),
                       ("account", b'{"type": "AccountOpened", "data": {"owner": "o"}')):  # fmt: skip
        aggregate = f"m-{uid()}"
        sent = body + b', "command_id": "m-1", "expected_version": ' + raw + b"}"
        status, answer = await fleet.post(f"/v1/{kind}/{aggregate}/events", raw=sent)
        assert (status, answer["error"]) == (400, "bad_request"), answer
        assert answer["message"].startswith("field expected_version: "), answer
        assert len(answer["message"]) < 300
        assert (await fleet.get(f"/v1/{kind}/{aggregate}/events"))[0] == 404  # nothing stored
        status, told = await fleet.get(f"/v1/{kind}/{aggregate}/outcome?command_id=m-1")
        assert (status, told.get("outcome")) == (404, "none"), told  # nor claimed, nor marked


async def test_concurrent_appends_with_one_expectation_store_exactly_one_in_both_modes(
    fleet: FleetProcess, stack: EmbeddedStack
) -> None:
    cart = await opened_cart(fleet, stack)
    for expected in (1, 2, 3):  # each round races the winner of the one before
        answers = await race([fleet], f"/v1/cart/{cart}/events", ITEM, expected=expected, n=16,
                             run=f"{cart}-{expected}")  # fmt: skip
        await one_stored_per_round(stack, db(fleet), fleet, ("cart", cart), answers,
                                   expected=expected)  # fmt: skip
    account = f"a-{uid()}"
    path = f"/v1/account/{account}/events"
    assert (await fleet.post(path, {"type": "AccountOpened", "data": {"owner": "o"}}))[0] == 201
    for expected in (1, 2, 3):
        answers = await race([fleet], path, DEPOSIT, expected=expected, n=16, run=f"{expected}")
        stored = [t for t in answers if t.status == 201]
        assert len(stored) == 1 and stored[0].body["version"] == expected + 1, answers
        assert all(refused_truly(t, expected=expected) for t in answers if t.status != 201)
    history = await stored_versions(stack, db(fleet), "account", account)
    assert [(v, e) for v, e, _ in history] == [(1, None), (2, 1), (3, 2), (4, 3)]
    report = await audit(stack, db(fleet), domains=all_domains(), topics=False, views=False,
                         refs=[("cart", cart), ("account", account)])  # fmt: skip
    assert errors(report) == []


async def test_a_retry_of_a_stored_command_is_its_duplicate_in_both_modes(
    fleet: FleetProcess, stack: EmbeddedStack
) -> None:
    cart = await opened_cart(fleet, stack)
    body = {**ITEM, "expected_version": 1, "command_id": "add-once"}
    first = await send(fleet, f"/v1/cart/{cart}/events", body)
    assert first.status == 202

    async def stored() -> bool:
        return len(await stored_versions(stack, db(fleet), "cart", cart)) == 2

    await wait_for(stored, timeout_s=30, what="the item stored")
    again = await send(fleet, f"/v1/cart/{cart}/events", body)
    # Its own event moved the cart past the expectation: the retry is told what became of it.
    assert again.status == 202 and again.body["duplicate"] is True and again.body["version"] == 2
    assert again.body["event_id"] == first.body["event_id"]
    account = f"a-{uid()}"
    path = f"/v1/account/{account}/events"
    opening = {"type": "AccountOpened", "data": {"owner": "o"}, "expected_version": 0,
               "command_id": "open-once"}  # fmt: skip
    opened = await send(fleet, path, opening)
    retried = await send(fleet, path, opening)
    assert (retried.status, retried.body["duplicate"]) == (201, True), retried
    assert retried.body["event_id"] == opened.body["event_id"] and retried.body["version"] == 1
    assert len(await stored_versions(stack, db(fleet), "account", account)) == 1


async def test_the_commands_topic_takes_an_expected_version(fleet: FleetProcess) -> None:
    kafka = fleet.env["EVENTFLEET_KAFKA_URL"]
    cart = f"t-{uid()}"
    key = f"cart:{cart}".encode()
    commands: list[dict[str, Any]] = [
        {"type": "CartOpened", "data": {"customer_id": "u"}, "expected_version": 0},
        {**ITEM, "expected_version": 1},
        {**ITEM, "expected_version": 1},  # the one before it stored version 2: stale
        {**ITEM, "expected_version": "2"},
        {**ITEM, "expected_version": -1},
    ]
    ours_only = {"aggregate_type": "cart", "aggregate_id": cart}
    records = [(key, orjson.dumps({**ours_only, **c}), ()) for c in commands]
    await produce_raw(kafka, f"{fleet.prefix}commands", records)  # one key: handled in this order
    replies = await read_until(kafka, f"{fleet.prefix}commands.replies", expect=len(commands),
                               where=lambda r: r.key == key, settle_s=0.3)  # fmt: skip
    ours = [orjson.loads(r.value) for r in replies if r.key == key]
    assert [(r["status"], r["body"].get("error")) for r in ours] == [
        (202, None), (202, None), (409, STALE), (400, "invalid_command"), (400, "invalid_command"),
    ], ours  # fmt: skip
    assert ours[2]["body"]["current_version"] == 2
    assert "expected_version" in ours[3]["body"]["message"]


async def etag_of(fleet: FleetProcess, path: str) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.get(fleet.url + path, headers=fleet.auth_headers) as r,
    ):
        assert r.status == 200, await r.text()
        return r.headers["ETag"]


async def test_the_reads_answer_the_version_as_etag_and_if_match_sends_it_back(
    fleet: FleetProcess,
) -> None:
    account = f"a-{uid()}"
    path = f"/v1/account/{account}/events"
    opened = await send(fleet, path, {"type": "AccountOpened", "data": {"owner": "ann"}})
    assert opened.status == 201, opened
    tag = await etag_of(fleet, f"/v1/account/{account}/state")
    assert tag == '"1"' and await etag_of(fleet, path) == '"1"'
    headers = {**fleet.auth_headers, "If-Match": tag}
    status, stored = await fleet.request("POST", path, DEPOSIT, headers=headers)
    assert (status, stored["version"]) == (201, 2), stored
    status, stale = await fleet.request("POST", path, DEPOSIT, headers=headers)
    assert (status, stale["error"], stale["current_version"]) == (409, STALE, 2), stale
    assert await etag_of(fleet, f"/v1/account/{account}/state") == '"2"'


@pytest.mark.parametrize("sent", ["7", '"seven"', '"-1"', '"1", "2"', 'W/"1"', "*", '""'])
async def test_a_malformed_if_match_is_a_400_and_writes_nothing(
    fleet: FleetProcess, sent: str
) -> None:
    cart = f"m-{uid()}"
    headers = {**fleet.auth_headers, "If-Match": sent}
    body = {"type": "CartOpened", "data": {"customer_id": "u"}, "command_id": "im-1"}
    status, answer = await fleet.request("POST", f"/v1/cart/{cart}/events", body, headers=headers)
    assert (status, answer["error"]) == (400, "bad_request"), answer
    assert "If-Match" in answer["message"]
    assert (await fleet.get(f"/v1/cart/{cart}/events"))[0] == 404
    status, told = await fleet.get(f"/v1/cart/{cart}/outcome?command_id=im-1")
    assert (status, told.get("outcome")) == (404, "none"), told


async def test_if_match_and_a_body_that_disagree_are_refused(fleet: FleetProcess) -> None:
    account = f"a-{uid()}"
    headers = {**fleet.auth_headers, "If-Match": '"0"'}
    body = {"type": "AccountOpened", "data": {"owner": "o"}, "expected_version": 3}
    status, answer = await fleet.request(
        "POST", f"/v1/account/{account}/events", body, headers=headers
    )
    assert (status, answer["error"]) == (400, "bad_request") and "send one of them" in str(answer)
    agree = {**body, "expected_version": 0}
    status, answer = await fleet.request(
        "POST", f"/v1/account/{account}/events", agree, headers=headers
    )
    assert (status, answer["version"]) == (201, 1), answer
