"""The client's parts that need no fleet: the SSE parser, the backoff, and the arguments it
refuses before sending anything."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from workers.client import ArgumentError, AsyncClient, Backoff, Client, TransportError
from workers.client.sse import SseMessage, SseParser


def feed(parser: SseParser, text: str) -> list[SseMessage]:
    return [m for line in text.split("\n") if (m := parser.line(line)) is not None]


def test_the_parser_reads_ids_events_comments_and_multiline_data() -> None:
    parser = SseParser()
    got = feed(parser, "retry: 1000\n\nid: 1\ndata: {\"a\":1}\n\n: heartbeat\n\n"
                       "id: 2\nevent: error\ndata: x\ndata: y\n\ndata:no-space\nfoo: bar\n\n")  # fmt: skip
    assert got == [SseMessage("message", '{"a":1}', "1"), SseMessage("error", "x\ny", "2"),
                   SseMessage("message", "no-space", "2")]  # fmt: skip
    assert parser.retry_ms == 1000 and parser.last_id == "2"


def test_the_parser_keeps_the_last_id_across_messages_without_one_and_ignores_a_nul_id() -> None:
    parser = SseParser(last_id="7")
    assert feed(parser, "data: a\n\nid: x\0y\ndata: b\n\nid:\ndata: c\n\n") == [
        SseMessage("message", "a", "7"), SseMessage("message", "b", "7"),
        SseMessage("message", "c", ""),
    ]  # fmt: skip


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
            lambda: client.state("order", "o-1", as_of=datetime(2026, 1, 1)),
            lambda: client.outcome("order", "o-1"),
            lambda: client.outcome("order", "o-1", command_id="c", event_id="e"),
            lambda: client.erase(""),
        ):
            with pytest.raises(ArgumentError):
                await call()
        with pytest.raises(ArgumentError, match="aggregate_id is empty"):
            client.events("order", "")
        with pytest.raises(ArgumentError, match="aggregate_id is empty"):
            client.subscribe("order", "")
    finally:
        await client.close()
    with pytest.raises(ArgumentError, match="http://"):
        AsyncClient("127.0.0.1:8080")
    with pytest.raises(ArgumentError, match="timeout_s"):
        AsyncClient("http://x", timeout_s=0)


def test_a_closed_sync_client_says_so_and_closing_twice_is_nothing() -> None:
    client = Client("http://127.0.0.1:9")
    client.close()
    client.close()
    with pytest.raises(RuntimeError, match="closed"):
        client.state("order", "o-1")


def test_what_is_retried_and_for_how_long() -> None:
    from workers.client._transport import retry_delay  # the one rule behind every retry
    from workers.client.errors import error_from_answer

    policy = Backoff(attempts=3, first_s=0.1, max_s=0.4, budget_s=10)
    far = time.monotonic() + 60
    busy = error_from_answer(429, {"error": "too_many_subscriptions", "message": "m"},
                             retry_after="5")  # fmt: skip
    assert 5 <= (retry_delay(policy, 1, busy, far) or 0) <= 5.1  # the fleet's wait, at least
    assert retry_delay(policy, 1, busy, time.monotonic() + 2) is None  # past the budget: now
    unknown = error_from_answer(503, {"error": "outcome_unknown", "message": "m"})
    assert 0 <= (retry_delay(policy, 2, unknown, far) or 0) <= 0.2
    assert retry_delay(policy, 3, unknown, far) is None  # the third try was the last
    assert retry_delay(policy, 1, TransportError("reset"), far) is not None
    for never in (
        error_from_answer(504, {"error": "not_yet_stored", "message": "m"}),  # wait_ms decided
        error_from_answer(409, {"error": "transition_rejected", "message": "m"}),
        error_from_answer(401, {"error": "unauthenticated", "message": "m"}),
        ArgumentError("empty"),
    ):
        assert retry_delay(policy, 1, never, far) is None, never


def test_a_streams_closing_notice_becomes_the_error_to_reconnect_after_or_raise() -> None:
    from workers.client import errors
    from workers.client._transport import _notice, parse_object

    slow = _notice(SseMessage("slow_client", '{"error":"slow_client","message":"m"}', "4"))
    assert isinstance(slow, TransportError) and slow.retriable
    gone = _notice(SseMessage("error", '{"error":"store_unavailable","message":"m"}', "4"))
    assert isinstance(gone, errors.StoreUnavailableError) and gone.retriable
    denied = _notice(SseMessage("error", '{"error":"forbidden","message":"m"}', None))
    assert isinstance(denied, errors.ForbiddenError) and not denied.retriable
    for foreign in ("not json", "[1]", "\\ud800"):
        with pytest.raises(TransportError, match="JSON object"):
            parse_object(foreign)
