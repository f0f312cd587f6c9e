"""The client library against a live fleet: every method, async and blocking; each refusal as
its own exception class; paging that walks a long history exactly once, also while it grows."""

from __future__ import annotations

import asyncio
import importlib
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fleet import FleetProcess, order_items
from tests.tokens import VIEWER
from workers.client import ApiError, ArgumentError, AsyncClient, Backoff, Client, Retrying, errors
from workers.client.codegen import main as codegen


def run_id() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture
async def retries() -> list[Retrying]:
    return []


@pytest.fixture
async def client(fleet: FleetProcess, retries: list[Retrying]) -> AsyncIterator[AsyncClient]:
    # token: a function, asked before each request (a fresh token each time).
    heard = Backoff(on_retry=retries.append)  # every retry and reconnect, for the tests to see
    async with AsyncClient(fleet.url, token=fleet.token, retry=heard, reconnect=heard) as made:
        yield made


async def test_append_then_read_your_writes_events_and_outcome(client: AsyncClient) -> None:
    order = f"o-{run_id()}"
    placed = await client.append("order", order, "OrderPlaced", {"items": order_items()})
    assert not placed.stored and placed.partition is not None and not placed.duplicate
    assert uuid.UUID(placed.command_id)  # made by the client, sent with the first try
    state = await client.state("order", order, command_id=placed.command_id, wait_ms=5000)
    assert state.version == 1 and state.state["status"] == "placed"
    paid = await client.append("order", order, "OrderPaid", {"amount": 12.5}, command_id="pay-1",
                               correlation_id="corr-1")  # fmt: skip
    assert paid.command_id == "pay-1"
    state = await client.state("order", order, min_version=2, wait_ms=5000)
    assert state.version == 2 and state.state["status"] == "paid"
    assert (await client.state("order", order, at_version=1)).state["status"] == "placed"
    events = [e async for e in client.events("order", order)]
    assert [(e.version, e.type) for e in events] == [(1, "OrderPlaced"), (2, "OrderPaid")]
    assert events[0].id == placed.event_id and events[1].command_id == "pay-1"
    assert events[1].metadata["correlation_id"] == "corr-1" and events[1].aggregate_id == order

    again = await client.append("order", order, "OrderPaid", {"amount": 12.5}, command_id="pay-1")
    assert again.duplicate and again.event_id == paid.event_id  # the same command, told so
    stored = await client.outcome("order", order, command_id="pay-1")
    assert (stored.outcome, stored.version, stored.event_id) == ("stored", 2, paid.event_id)
    by_event = await client.outcome("order", order, event_id=placed.event_id)
    assert (by_event.outcome, by_event.version) == ("stored", 1)
    unknown = await client.outcome("order", order, command_id="never-sent")
    assert (unknown.outcome, unknown.command_id) == ("none", "never-sent")
    assert len([e async for e in client.events("order", order)]) == 2  # the duplicate: not stored


async def test_subscribe_catches_up_then_streams_live_events(client: AsyncClient) -> None:
    order = f"o-{run_id()}"
    await client.append("order", order, "OrderPlaced", {"items": order_items()})
    stream = client.subscribe("order", order)
    seen = []
    async for event in stream:
        seen.append(event)
        if event.version == 1:  # caught up: what follows is stored while subscribed
            await client.append("order", order, "OrderPaid", {"amount": 1})
        if event.version == 2:
            break
    await stream.aclose()
    assert [(e.version, e.type) for e in seen] == [(1, "OrderPlaced"), (2, "OrderPaid")]
    after = client.subscribe("order", order, after_version=1)
    first = await anext(after)
    await after.aclose()
    assert first.version == 2


async def test_the_blocking_client_does_the_same_on_a_sync_domain(fleet: FleetProcess) -> None:
    account = f"a-{run_id()}"

    def scenario() -> None:
        with Client(fleet.url, token=lambda: fleet.token()) as client:
            opened = client.append("account", account, "AccountOpened", {"owner": "Ann"})
            assert opened.stored and opened.version == 1  # sync: stored before the answer
            client.append("account", account, "MoneyDeposited", {"amount": 500})
            assert (
                client.state("account", account, min_version=2, wait_ms=2000).state["balance"]
                == 500
            )
            page = client.events_page("account", account, limit=1)
            assert [e.version for e in page.events] == [1] and page.more
            assert page.next_after_version == 1
            assert [e.version for e in client.events("account", account, page_size=1)] == [1, 2]
            assert client.outcome("account", account, command_id=opened.command_id).version == 1
            with client.subscribe("account", account) as live:
                assert next(live).type == "AccountOpened"
                client.append("account", account, "MoneyWithdrawn", {"amount": 200})
                assert next(live).version == 2
                third = next(live)
                assert (third.version, third.type) == (3, "MoneyWithdrawn")
            with pytest.raises(errors.TransitionRejectedError) as refused:
                client.append("account", account, "MoneyWithdrawn", {"amount": 10**6})
            assert "overdraw" in refused.value.message
            # Decided on state read at version 3: only while it is still at 3.
            at = client.state("account", account).version
            client.append("account", account, "MoneyDeposited", {"amount": 1}, expected_version=at)
            with pytest.raises(errors.WrongExpectedVersionError) as stale:
                client.append(
                    "account", account, "MoneyDeposited", {"amount": 1}, expected_version=at
                )
            assert stale.value.body["current_version"] == at + 1

    await asyncio.to_thread(scenario)  # the client's own loop thread, beside this one


async def test_erase_shreds_a_subject_and_says_so_again(
    fleet: FleetProcess, client: AsyncClient
) -> None:
    account = f"a-{run_id()}"
    await client.append("account", account, "AccountOpened", {"owner": "Ann Example"})
    erased = await client.erase(account)
    assert (erased.subject, erased.by, erased.keys_destroyed, erased.already_erased) == (
        account, "tester", 1, False)  # fmt: skip
    assert (await client.state("account", account)).state["owner"] != "Ann Example"
    again = await client.erase(account)
    assert again.already_erased and again.erased_at == erased.erased_at
    with pytest.raises(errors.NotFoundError):
        await client.erase(f"nobody-{run_id()}")
    async with AsyncClient(fleet.url, token=fleet.token("vera", [VIEWER])) as viewer:
        with pytest.raises(errors.ForbiddenError) as denied:
            await viewer.erase(account)
    assert denied.value.reason is not None and denied.value.status == 403


async def test_each_refusal_is_its_own_exception_raised_at_once(
    fleet: FleetProcess, client: AsyncClient, retries: list[Retrying]
) -> None:
    order = f"o-{run_id()}"
    with pytest.raises(errors.TransitionRejectedError) as rejected:
        await client.append("order", order, "OrderPaid", {"amount": 1})
    assert rejected.value.body["current"] is None or rejected.value.body["allowed"]
    cases: list[tuple[type[ApiError], object]] = [
        (errors.InvalidDataError, client.append("order", order, "OrderPlaced", {"items": "no"})),
        (errors.UnknownEventTypeError, client.append("order", order, "OrderLost", {})),
        (errors.UnknownAggregateTypeError, client.append("nosuch", order, "X", {})),
        (errors.NotFoundError, client.state("order", order)),
        (errors.BadRequestError, client.state("order", "has space")),  # quoted, refused there
        (errors.BadRequestError, client.state("order", order, min_version=1, wait_ms=40_000)),
        (errors.PayloadTooLargeError,
         client.append("order", order, "OrderPlaced", {"items": [{"sku": "x" * 70_000}]})),
        (errors.NotYetStoredError, client.state("order", order, min_version=5, wait_ms=50)),
    ]  # fmt: skip
    for expected, call in cases:
        with pytest.raises(expected) as caught:
            await call  # type: ignore[misc]  # each is a coroutine of the client
        assert type(caught.value) is expected and caught.value.status == expected.status
        assert caught.value.message and caught.value.code == expected.code
    await client.append("order", order, "OrderPlaced", {"items": order_items()})
    with pytest.raises(errors.VersionNotFoundError) as past:
        await client.state("order", order, min_version=1, wait_ms=5000, at_version=9)
    assert past.value.body["newest_version"] == 1
    assert retries == []  # none of them was tried twice (not_yet_stored: the caller's bound)
    async with AsyncClient(fleet.url, token="not.a.token") as stranger:
        with pytest.raises(errors.UnauthenticatedError) as denied:
            await stranger.state("order", order)
    assert denied.value.reason is not None
    with pytest.raises(ArgumentError):
        await client.append("order", "", "OrderPlaced", {"items": order_items()})
    # A subscription's refusals too: raised at its first step, never reconnected.
    for expected, stream in (
        (errors.UnknownAggregateTypeError, client.subscribe("nosuch", order)),
        (errors.BadRequestError, client.subscribe("order", order, after_version=-1)),
    ):
        with pytest.raises(expected):
            await anext(stream)
    async with AsyncClient(fleet.url, token="not.a.token") as stranger:
        with pytest.raises(errors.UnauthenticatedError):
            await anext(stranger.subscribe("order", order))
    assert retries == []


async def test_paging_walks_a_long_history_exactly_once_while_it_grows(client: AsyncClient) -> None:
    account = f"a-{run_id()}"
    await client.append("account", account, "AccountOpened", {"owner": "Pat"})
    for _ in range(249):
        await client.append("account", account, "MoneyDeposited", {"amount": 1})

    async def grow() -> None:
        for _ in range(60):
            await client.append("account", account, "MoneyDeposited", {"amount": 1})

    growing = asyncio.create_task(grow())
    walked = [e.version async for e in client.events("account", account, page_size=7)]
    await growing
    assert len(walked) >= 250 and walked == list(range(1, len(walked) + 1))  # once, in order
    everything = [e.version async for e in client.events("account", account, page_size=1000)]
    assert everything == list(range(1, 311))
    tail = [e.version async for e in client.events("account", account, after_version=300,
                                                   page_size=3)]  # fmt: skip
    assert tail == list(range(301, 311))
    print(
        f"paging: walked {len(walked)} versions in pages of 7 while 60 were appended; "
        "each once, in order"
    )


async def test_subscribe_type_streams_every_aggregate_of_a_type(client: AsyncClient) -> None:
    orders = [f"o-{run_id()}" for _ in range(2)]
    for order in orders:
        await client.append("order", order, "OrderPlaced", {"items": order_items()})
    seen: dict[str, int] = {}
    stream = client.subscribe_type("order")
    try:
        async with asyncio.timeout(60):
            async for event in stream:  # from each partition's start: others' orders too
                if event.aggregate_id in orders:
                    seen[event.aggregate_id] = seen.get(event.aggregate_id, 0) + 1
                if len(seen) == len(orders):
                    break
    finally:
        await stream.aclose()
    assert seen == dict.fromkeys(orders, 1)


async def test_typed_event_data_generated_from_the_domains_goes_out_and_comes_back(
    client: AsyncClient, tmp_path: Path
) -> None:
    out = tmp_path / "typed_fleet"
    assert codegen(["events", "workers.examples.domains:default_domains", "--out", str(out)]) == 0
    sys.path.insert(0, str(tmp_path))
    try:
        order = importlib.import_module("typed_fleet.order")
    finally:
        sys.path.remove(str(tmp_path))
    placed_data = order.OrderPlaced(items=[order.OrderPlacedItems(sku="tea", qty=2, price=3.5)])
    made, the_order = order.OrderPaid(amount=7), f"o-{run_id()}"
    await client.append("order", the_order, placed_data)
    paid = await client.append("order", the_order, made)
    read = [order.data(e) async for e in client.events("order", the_order,
                                                       command_id=paid.command_id, wait_ms=5000)]  # fmt: skip
    assert read == [placed_data, made]  # what went out, as it was declared, came back
    with pytest.raises(ArgumentError, match="amount"):  # refused here: nothing was sent
        await client.append("order", the_order, order.OrderPaid(amount=-1))
    assert [e.version async for e in client.events("order", the_order)] == [1, 2]
