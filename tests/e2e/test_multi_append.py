"""``POST /v1/appends`` on the real services (issue 47): one event to each of several aggregates,
all stored in one MongoDB transaction or none, published together on events.stored.

One fleet of every role serves the module (``tests.e2e.vaults``: the account and the vault are
sync, the order async, ``game_states`` a storage domain), with at most 5 items a request. Every
refusal is checked to have written nothing, read from MongoDB itself.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.e2e.expecting import stored_versions
from tests.fleet import FleetProcess, running_fleet
from tests.kafka_topics import read_until
from topics.envelope import decode
from workers.client import ArgumentError, AsyncClient, Client, ToAppend, errors
from workers.devtools.embedded import EmbeddedStack

ROUTE = "/v1/appends"
MAX_ITEMS = 5


@pytest.fixture(scope="module")
async def fleet(stack: EmbeddedStack) -> AsyncIterator[FleetProcess]:
    env = {"EVENTFLEET_DOMAINS": "tests.e2e.vaults:domains",
           "EVENTFLEET_MULTI_APPEND_MAX_ITEMS": str(MAX_ITEMS)}  # fmt: skip
    async with running_fleet(stack, f"ma_{uuid.uuid4().hex[:8]}", **env) as process:
        yield process


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def item(aggregate_id: str, kind: str, data: dict[str, Any] | None = None,
         expected_version: int | None = None, aggregate_type: str = "account") -> dict[str, Any]:  # fmt: skip
    found: dict[str, Any] = {"aggregate_type": aggregate_type, "aggregate_id": aggregate_id,
                             "type": kind, "data": data or {}}  # fmt: skip
    if expected_version is not None:
        found["expected_version"] = expected_version
    return found


def deposit(account: str, amount: int, expected: int | None = None) -> dict[str, Any]:
    return item(account, "MoneyDeposited", {"amount": amount}, expected)


def withdraw(account: str, amount: int, expected: int | None = None) -> dict[str, Any]:
    return item(account, "MoneyWithdrawn", {"amount": amount}, expected)


async def opened(fleet: FleetProcess, *, balance: int = 0) -> str:
    account = uid("acc")
    path = f"/v1/account/{account}/events"
    status, body = await fleet.post(path, {"type": "AccountOpened", "data": {"owner": "o"}})
    assert status == 201, body
    if balance:
        status, body = await fleet.post(path, {"type": "MoneyDeposited",
                                               "data": {"amount": balance}})  # fmt: skip
        assert status == 201, body
    return account


async def versions(fleet: FleetProcess, stack: EmbeddedStack, *ids: str,
                   aggregate_type: str = "account") -> list[list[int]]:  # fmt: skip
    db = fleet.env["EVENTFLEET_MONGO_DATABASE"]
    found = [await stored_versions(stack, db, aggregate_type, i) for i in ids]
    return [[version for version, _, _ in history] for history in found]


async def published_of(fleet: FleetProcess, command_id: str, expect: int) -> list[Any]:
    records = await read_until(
        fleet.env["EVENTFLEET_KAFKA_URL"], f"{fleet.prefix}events.stored", expect=expect,
        where=lambda r: decode(r.value).metadata.command_id == command_id, settle_s=0.3,
    )  # fmt: skip
    return [
        e for e in map(decode, (r.value for r in records)) if e.metadata.command_id == command_id
    ]


async def test_a_transfer_is_stored_whole_and_published_together(
    fleet: FleetProcess, stack: EmbeddedStack
) -> None:
    source, target = await opened(fleet, balance=100), await opened(fleet)
    command = uid("transfer")
    body = {"appends": [withdraw(source, 30, 2), deposit(target, 30)], "command_id": command}
    status, answer = await fleet.post(ROUTE, body)
    assert status == 201, answer
    assert answer["published"] is True and "duplicate" not in answer
    events = answer["events"]
    assert [(e["aggregate_id"], e["version"]) for e in events] == [(source, 3), (target, 2)]
    assert await versions(fleet, stack, source, target) == [[1, 2, 3], [1, 2]]
    for account, balance in ((source, 70), (target, 30)):
        status, state = await fleet.get(f"/v1/account/{account}/state")
        assert state["state"]["balance"] == balance
    on_stream = await published_of(fleet, command, expect=2)
    assert {e.id for e in on_stream} == {e["event_id"] for e in events}
    assert len({e.metadata.correlation_id for e in on_stream}) == 1  # one conversation
    # Each aggregate's outcome answers for its part of the request, by the one command id.
    status, outcome = await fleet.get(f"/v1/account/{target}/outcome?command_id={command}")
    assert (status, outcome["outcome"], outcome["version"]) == (200, "stored", 2)


async def test_the_third_refused_stores_nothing_of_the_first_two(
    fleet: FleetProcess, stack: EmbeddedStack
) -> None:
    a, b, c = [await opened(fleet, balance=10) for _ in range(3)]
    command = uid("half")
    stale = {"appends": [deposit(a, 1, 2), deposit(b, 1, 2), deposit(c, 1, 1)],
             "command_id": command}  # fmt: skip
    status, answer = await fleet.post(ROUTE, stale)
    assert (status, answer["error"], answer["item"]) == (409, "wrong_expected_version", 2), answer
    assert (answer["aggregate_id"], answer["expected_version"], answer["current_version"]) == (
        c, 1, 2,
    )  # fmt: skip
    assert answer["message"].startswith(f"appends[2] (account {c}): account {c} is at version 2")
    overdrawn = {"appends": [deposit(a, 1), deposit(b, 1), withdraw(c, 50)]}
    status, answer = await fleet.post(ROUTE, overdrawn)
    assert (status, answer["error"], answer["item"]) == (409, "transition_rejected", 2), answer
    assert "overdraw" in answer["message"]
    assert await versions(fleet, stack, a, b, c) == [[1, 2]] * 3
    assert await published_of(fleet, command, expect=0) == []


async def test_of_concurrent_transfers_expecting_one_version_one_is_stored(
    fleet: FleetProcess, stack: EmbeddedStack
) -> None:
    """Each opens an account of its own and withdraws from ``source`` expecting version 2: the
    transactions race on source's version 3; the losers store nothing, not even their own
    account, and are told the version the winner left."""
    source = await opened(fleet, balance=100)
    targets = [uid("to") for _ in range(6)]
    bodies = [
        {"appends": [item(t, "AccountOpened", {"owner": "t"}), withdraw(source, 10, 2)],
         "command_id": uid("race")}
        for t in targets
    ]  # fmt: skip
    answers = await asyncio.gather(*(fleet.post(ROUTE, b) for b in bodies))
    stored = [i for i, (status, _) in enumerate(answers) if status == 201]
    assert len(stored) == 1, answers
    for i, (status, body) in enumerate(answers):
        if i not in stored:
            assert (status, body["error"], body["item"]) == (409, "wrong_expected_version", 1)
            assert body["current_version"] == 3
    assert await versions(fleet, stack, source) == [[1, 2, 3]]
    assert await versions(fleet, stack, *targets) == [[1] if i in stored else [] for i in range(6)]


async def test_a_retry_is_answered_the_stored_events_and_a_reused_id_is_refused(
    fleet: FleetProcess, stack: EmbeddedStack
) -> None:
    source, target = await opened(fleet, balance=40), await opened(fleet)
    command = uid("retry")
    body = {"appends": [withdraw(source, 40), deposit(target, 40)], "command_id": command}
    status, first = await fleet.post(ROUTE, body)
    assert status == 201, first
    status, again = await fleet.post(ROUTE, body)  # the balance is 0 now: replayed, it would fail
    assert status == 201 and again["duplicate"] is True and "published" not in again
    assert again["events"] == first["events"]
    other = await opened(fleet)
    reused = {"appends": [deposit(target, 1), deposit(other, 1)], "command_id": command}
    status, answer = await fleet.post(ROUTE, reused)
    assert (status, answer["error"]) == (409, "command_reused"), answer
    assert other in answer["message"] and "new command id" in answer["message"]
    assert await versions(fleet, stack, source, target, other) == [[1, 2, 3], [1, 2], [1]]
    # Another principal's equal command id is another command: its own events, stored.
    status, theirs = await fleet.post(ROUTE, reused, token=fleet.token("someone-else"))
    assert status == 201 and "duplicate" not in theirs, theirs


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("7", "a string ('7'); send the number without quotes"),
        (True, "a boolean (true)"),
        (1.5, "written with a fraction or an exponent"),
        (-1, "versions are 0 or more"),
        (2**64, "does not fit in 64 bits"),
    ],
)
async def test_a_malformed_expected_version_names_its_item_and_writes_nothing(
    fleet: FleetProcess, stack: EmbeddedStack, value: object, says: str
) -> None:
    a, b = uid("mal"), uid("mal")
    second = {**item(b, "AccountOpened", {"owner": "m"}), "expected_version": value}
    body = {"appends": [item(a, "AccountOpened", {"owner": "m"}), second]}
    status, answer = await fleet.post(ROUTE, raw=json.dumps(body).encode())  # 2**64 too
    assert (status, answer["error"]) == (400, "bad_request"), answer
    assert (
        answer["message"].startswith("appends[1].expected_version: ") and says in answer["message"]
    )
    assert await versions(fleet, stack, a, b) == [[], []]


async def test_hostile_bodies_get_a_clear_4xx_and_write_nothing(
    fleet: FleetProcess, stack: EmbeddedStack
) -> None:
    a, b = uid("h"), uid("h")
    open_a = item(a, "AccountOpened", {"owner": "h"})
    cases: list[tuple[Any, int, str, str]] = [
        ({"appends": []}, 400, "bad_request", "field 'appends' is required: a list of at least one"),
        ({}, 400, "bad_request", "field 'appends' is required"),
        ({"appends": open_a}, 400, "bad_request", "field 'appends' is required"),
        ({"appends": [item(uid("n"), "AccountOpened", {"owner": "h"})
                      for _ in range(MAX_ITEMS + 1)]}, 400, "bad_request",
         f"has {MAX_ITEMS + 1} items; at most {MAX_ITEMS}"),
        ({"appends": [open_a, deposit(b, 1), deposit(a, 2)]}, 400, "bad_request",
         f"appends[2] names account {a}, as appends[0] does: one item per aggregate"),
        ({"appends": [open_a], "type": "AccountOpened"}, 400, "bad_request",
         "unknown field 'type'"),
        ({"appends": [{**open_a, "command_id": "x"}]}, 400, "bad_request",
         "appends[0] has an unknown field 'command_id'"),
        ({"appends": [open_a, "AccountOpened"]}, 400, "bad_request", "appends[1] must be an object"),
        ({"appends": [{**open_a, "aggregate_type": "Account!"}]}, 400, "bad_request",
         "appends[0].aggregate_type 'Account!' must be an aggregate type"),
        ({"appends": [{**open_a, "aggregate_id": "a\nb"}]}, 400, "bad_request",
         "appends[0].aggregate_id 'a\\nb' must be an aggregate id"),
        ({"appends": [{**open_a, "type": ""}]}, 400, "bad_request", "appends[0].type is required"),
        ({"appends": [{**open_a, "data": []}]}, 400, "bad_request", "appends[0].data"),
        ({"appends": [open_a], "command_id": "a\rb"}, 400, "bad_request", "control character"),
        ({"appends": [open_a], "command_id": "x" * 257}, 400, "bad_request", "1 to 256"),
        ({"appends": [open_a, item(b, "Opened", aggregate_type="nowhere")]}, 404,
         "unknown_aggregate_type", "appends[1] (nowhere "),
        ({"appends": [open_a, item(b, "AccountRenamed")]}, 422, "unknown_event_type",
         f"appends[1] (account {b}): "),
        ({"appends": [open_a, item(b, "AccountOpened", {"owner": 7})]}, 422, "invalid_data",
         f"appends[1] (account {b}): "),
        ({"appends": [open_a, item(b, "OrderPlaced", {"items": []}, aggregate_type="order")]},
         422, "async_domain", f"appends[1] (order {b}): order is an async domain"),
        ({"appends": [open_a, item(b, "GameStateCreated", aggregate_type="game_states")]},
         405, "read_only", f"appends[1] (game_states {b}): game_states is a storage domain"),
    ]  # fmt: skip
    for body, status, code, says in cases:
        got, answer = await fleet.post(ROUTE, body)
        assert (got, answer.get("error")) == (status, code), (body, answer)
        assert says in answer["message"], (says, answer)
    assert await versions(fleet, stack, a, b) == [[], []]
    for raw, status, code in (
        (b"{not json", 400, "bad_request"),
        (b'{"appends": [' + b'{"x": "' + b"y" * 70_000 + b'"}]}', 413, "payload_too_large"),
    ):
        got, answer = await fleet.post(ROUTE, raw=raw)
        assert (got, answer["error"]) == (status, code), answer
    got, answer = await fleet.request("POST", ROUTE, raw=b'{"appends": []}', headers={
        "Authorization": f"Bearer {fleet.token()}", "Content-Type": "text/plain"})  # fmt: skip
    assert (got, answer["error"]) == (415, "unsupported_media_type")
    got, answer = await fleet.request("POST", ROUTE, {"appends": [open_a]}, headers={})
    assert (got, answer["error"]) == (401, "unauthenticated")
    assert await versions(fleet, stack, a) == [[]]


async def test_sync_domains_mix_and_each_item_passes_its_access_rule(
    fleet: FleetProcess, stack: EmbeddedStack
) -> None:
    """An account and a vault in one request; the vault's rule lets only its owner fill it:
    alice may, bob may not (and then nothing of his request is stored)."""
    alice, bob = fleet.token("alice"), fleet.token("bob")
    vault, account = uid("v"), await opened(fleet, balance=50)
    status, body = await fleet.post(f"/v1/vault/{vault}/events", {"type": "VaultOpened"},
                                    token=alice)  # fmt: skip
    assert status == 201, body
    both = {"appends": [withdraw(account, 20),
                        item(vault, "CoinsStored", {"coins": 20}, aggregate_type="vault")]}  # fmt: skip
    status, refused = await fleet.post(ROUTE, both, token=bob)
    assert (status, refused["error"], refused["item"], refused["reason"]) == (
        403, "forbidden", 1, "not_your_vault",
    ), refused  # fmt: skip
    assert f"appends[1] (vault {vault}): bob does not own this vault (alice)" in refused["message"]
    assert await versions(fleet, stack, account) == [[1, 2]]
    status, stored = await fleet.post(ROUTE, both, token=alice)
    assert status == 201, stored
    assert [(e["aggregate_type"], e["version"]) for e in stored["events"]] == [
        ("account", 3), ("vault", 2),
    ]  # fmt: skip
    opened_by_bob = {"appends": [item(uid("v"), "VaultOpened", aggregate_type="vault")]}
    status, mine = await fleet.post(ROUTE, opened_by_bob, token=bob)
    assert status == 201, mine  # the owner is taken from bob's token, never from a body
    vault_of_bob = mine["events"][0]["aggregate_id"]
    status, state = await fleet.get(f"/v1/vault/{vault_of_bob}/state", token=bob)
    assert state["state"]["owner"] == "bob"


async def test_the_client_appends_across_aggregates_async_and_blocking(
    fleet: FleetProcess, stack: EmbeddedStack
) -> None:
    source, target = await opened(fleet, balance=10), await opened(fleet)
    async with AsyncClient(fleet.url, token=fleet.token) as client:
        moved = await client.append_many([
            ToAppend("account", source, "MoneyWithdrawn", {"amount": 4}, expected_version=2),
            ToAppend("account", target, "MoneyDeposited", {"amount": 4}),
        ])  # fmt: skip
        assert uuid.UUID(moved.command_id) and not moved.duplicate and moved.published
        assert [(e.aggregate_id, e.version) for e in moved.events] == [(source, 3), (target, 2)]
        with pytest.raises(errors.WrongExpectedVersionError) as stale:
            await client.append_many([
                ToAppend("account", target, "MoneyDeposited", {"amount": 1}),
                ToAppend("account", source, "MoneyWithdrawn", {"amount": 1}, expected_version=2),
            ])  # fmt: skip
        assert (stale.value.body["item"], stale.value.body["current_version"]) == (1, 3)
        with pytest.raises(errors.AsyncDomainError):
            await client.append_many([ToAppend("order", uid("o"), "OrderPlaced", {"items": []})])
        with pytest.raises(ArgumentError):
            await client.append_many([])

    def blocking() -> None:
        with Client(fleet.url, token=lambda: fleet.token()) as client:
            items = [ToAppend("account", source, "MoneyWithdrawn", {"amount": 6}),
                     ToAppend("account", target, "MoneyDeposited", {"amount": 6})]  # fmt: skip
            first = client.append_many(items, command_id="blocking-1", correlation_id="corr-b")
            again = client.append_many(items, command_id="blocking-1")
            assert again.duplicate and again.events == first.events

    await asyncio.to_thread(blocking)
    assert await versions(fleet, stack, source, target) == [[1, 2, 3, 4], [1, 2, 3]]
