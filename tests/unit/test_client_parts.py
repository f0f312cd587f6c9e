"""The client's parts that need no fleet: the retry policy, the arguments refused before
anything is sent, and the methods as ``help()`` shows them."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest
import stamina

from workers.client import (
    ArgumentError,
    AsyncClient,
    Backoff,
    Client,
    EventData,
    Retrying,
    TransportError,
    errors,
)
from workers.client.errors import error_from_answer
from workers.http.edge.params import moment


def test_backoff_waits_within_its_ceiling_doubling_and_honours_retry_after() -> None:
    policy = Backoff(attempts=5, first_s=0.1, max_s=0.4)
    for attempt, ceiling in ((1, 0.1), (2, 0.2), (3, 0.4), (4, 0.4), (60, 0.4), (2000, 0.4)):
        waits = [policy.delay_s(attempt) for _ in range(200)]
        assert all(0 <= w <= ceiling for w in waits) and len(set(waits)) > 100  # jittered
    assert all(3 <= policy.delay_s(1, retry_after_s=3) <= 3.1 for _ in range(50))


@pytest.mark.parametrize(
    "kwargs", [{"attempts": 0}, {"first_s": 0}, {"first_s": 2, "max_s": 1}, {"budget_s": 0}]
)
def test_a_backoff_that_could_never_work_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="Backoff"):
        Backoff(**kwargs)  # type: ignore[arg-type]  # the wrong values are the point


def tried(policy: Backoff, failures: list[BaseException]) -> tuple[int, BaseException | None]:
    """Run stamina's tries of ``policy`` over ``failures`` (then success): how many tries ran,
    and what was raised."""
    remaining, tries = list(failures), 0
    try:
        for attempt in policy.tries():
            with attempt:
                tries += 1
                if remaining:
                    raise remaining.pop(0)
    except BaseException as e:  # what stamina let through is the point
        return tries, e
    return tries, None


def test_what_is_retried_and_for_how_long() -> None:
    heard: list[Retrying] = []
    policy = Backoff(attempts=3, first_s=0.01, max_s=0.02, budget_s=10, on_retry=heard.append)
    unknown = error_from_answer(503, {"error": "outcome_unknown", "message": "m"})
    assert tried(policy, [unknown, TransportError("reset")]) == (3, None)
    assert [(r.attempt, type(r.error)) for r in heard] == [
        (1, errors.OutcomeUnknownError), (2, TransportError)]  # fmt: skip
    assert all(0 <= r.delay_s <= 0.02 for r in heard)
    assert tried(policy, [unknown] * 3) == (3, unknown)  # the third try was the last
    for never in (
        error_from_answer(504, {"error": "not_yet_stored", "message": "m"}),  # wait_ms decided
        error_from_answer(409, {"error": "transition_rejected", "message": "m"}),
        error_from_answer(401, {"error": "unauthenticated", "message": "m"}),
        ArgumentError("empty"),
        RuntimeError("a bug is no reason to try again"),
    ):
        assert tried(policy, [never]) == (1, never), never
    busy = error_from_answer(429, {"error": "too_many_subscriptions", "message": "m"},
                             retry_after="5")  # fmt: skip
    short = Backoff(attempts=3, first_s=0.01, max_s=0.02, budget_s=2)
    assert tried(short, [busy]) == (1, busy)  # its wait would end past the budget: now


def test_stamina_switches_apply_to_the_clients_tries() -> None:
    busy = error_from_answer(429, {"error": "too_many_subscriptions", "message": "m"},
                             retry_after="30")  # fmt: skip
    with_budget = Backoff(attempts=3, first_s=0.01, max_s=0.02, budget_s=60)
    stamina.set_testing(True, attempts=2)
    try:
        assert tried(with_budget, [busy]) == (2, None)  # no wait in testing mode
    finally:
        stamina.set_testing(False)


async def test_what_the_client_refuses_before_sending() -> None:
    # Port 9 (discard) on loopback: nothing listens, so a request that went out would fail
    # with a TransportError, never an ArgumentError.
    client = AsyncClient("http://127.0.0.1:9")
    try:
        for call in (
            lambda: client.append("order", "", "OrderPlaced", {}),
            lambda: client.append("", "o-1", "OrderPlaced", {}),
            lambda: client.append("order", "o-1", "", {}),
            lambda: client.append("order", "o-1", "OrderPlaced", {"tags": {"a", "b"}}),
            lambda: client.state("order", "o-1", wait_ms=100),
            lambda: client.state("order", "o-1", min_versoin=1),  # type: ignore[call-arg]
            lambda: client.state("order", "o-1", as_of=datetime(2026, 1, 1)),
            lambda: client.outcome("order", "o-1"),
            lambda: client.outcome("order", "o-1", command_id="c", event_id="e"),
            lambda: client.erase(""),
            lambda: client.global_page(aggregate_types=["order,account"]),
            lambda: client.global_page(event_types=[""]),
        ):
            with pytest.raises(ArgumentError):
                await call()
        for stream in (
            lambda: client.events("order", ""),
            lambda: client.events("order", "o-1", wait_ms=10),
            lambda: client.subscribe("order", ""),
            lambda: client.subscribe_type(""),
            lambda: client.global_events(aggregate_types="order,account"),
            lambda: client.subscribe_all(event_types=["OrderPlaced", ""]),
        ):
            with pytest.raises(ArgumentError):
                stream()  # at the call, before the first step
        with pytest.raises(TransportError, match="cannot connect"):
            await client.state("order", "o-1")  # and what does go out is tried
    finally:
        await client.close()
    with pytest.raises(ArgumentError, match="http://"):
        AsyncClient("127.0.0.1:8080")
    with pytest.raises(ArgumentError, match="timeout_s"):
        Client("http://x", timeout_s=0)


async def test_an_as_of_goes_as_the_same_moment_in_utc_as_the_server_takes_it() -> None:
    sent: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.params["as_of"])
        return httpx.Response(200, json={"version": 1, "state": {}})

    east, west = timezone(timedelta(hours=1)), timezone(-timedelta(hours=4, minutes=30))
    cases = [
        (datetime(2026, 1, 1, 1, 0, tzinfo=east), "2026-01-01T00:00:00Z"),
        (datetime(2025, 12, 31, 19, 30, tzinfo=west), "2026-01-01T00:00:00Z"),
        (datetime(2026, 1, 1, 0, 0, 0, 5, tzinfo=UTC), "2026-01-01T00:00:00.000005Z"),
    ]
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        client = AsyncClient("http://fleet", http=http)
        for given, wire in cases:
            await client.state("order", "o-1", as_of=given)
            assert sent[-1] == wire
            assert moment("as_of", wire) == given  # the server's rule: UTC only; the same moment
        with pytest.raises(ArgumentError, match="no time zone; pass an aware datetime"):
            await client.state("order", "o-1", as_of=datetime(2026, 1, 1, 1, 0))
        assert len(sent) == len(cases)  # the naive one was never sent
        await client.close()


class Paid(EventData, frozen=True, kw_only=True):
    aggregate_type = "order"
    event_type = "OrderPaid"
    amount: float


async def test_a_model_is_appended_only_to_its_own_type_and_without_other_data() -> None:
    client = AsyncClient("http://127.0.0.1:9", retry=Backoff(attempts=1))
    try:
        with pytest.raises(ArgumentError, match="not of 'account'"):
            await client.append("account", "a-1", Paid(amount=1))
        with pytest.raises(ArgumentError, match="pass no data"):
            await client.append("order", "o-1", Paid(amount=1), {"amount": 2})
    finally:
        await client.close()


def test_a_closed_sync_client_says_so_and_closing_twice_is_nothing() -> None:
    client = Client("http://127.0.0.1:9")
    client.close()
    client.close()
    with pytest.raises(RuntimeError, match="closed"):
        client.state("order", "o-1")


async def test_the_methods_read_as_the_calls_they_drive() -> None:
    for cls in (AsyncClient, Client):
        signature = inspect.signature(cls.append)
        assert list(signature.parameters)[:4] == [
            "self", "aggregate_type", "aggregate_id", "event_type"]  # fmt: skip
        assert signature.parameters["command_id"].kind is inspect.Parameter.KEYWORD_ONLY
        assert "``command_id`` defaults to a new" in (cls.append.__doc__ or "")
    made = AsyncClient("http://x")
    bound = inspect.signature(made.state)
    await made.close()
    assert "self" not in bound.parameters and "at_version" in bound.parameters
