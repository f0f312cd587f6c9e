"""The client against a scripted fleet on a real socket (``tests.fake_fleet``): the answers a
live fleet gives only at a bad moment (a 429 with ``Retry-After``, 503 ``outcome_unknown``, a
stream cut in the middle of a message) or never (a proxy's page, a body of another shape), each
through ``AsyncClient`` and the blocking ``Client`` alike."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest

from tests.fake_fleet import SSE, FakeFleet, Reply, envelope, fake_fleet, json_reply, sse
from workers.client import (
    AnswerError,
    ApiError,
    AsyncClient,
    Backoff,
    Client,
    Event,
    Retrying,
    TransportError,
    errors,
)

ORDER = "/v1/order/o-1"
STREAM = (("content-type", SSE),)


@pytest.fixture
def fake() -> Iterator[FakeFleet]:
    with fake_fleet() as running:
        yield running


class Either:
    """One of the two clients, its methods awaited (the blocking one's in a thread), and every
    retry it heard."""

    def __init__(self, fake: FakeFleet, kind: str, **policy: float) -> None:
        self.kind, self.heard = kind, []
        backoff = Backoff(
            **{"attempts": 5, "first_s": 0.01, "max_s": 0.05, "budget_s": 20, **policy},
            on_retry=self.heard.append,
        )  # type: ignore[arg-type]
        self.made: AsyncClient | Client = (
            AsyncClient(fake.url, token="t", retry=backoff, reconnect=backoff)
            if kind == "async"
            else Client(fake.url, token=lambda: "t", retry=backoff, reconnect=backoff)
        )
        self.heard: list[Retrying]

    async def __call__(self, name: str, *args: object, **kwargs: object) -> Any:
        method = getattr(self.made, name)
        if isinstance(self.made, AsyncClient):
            return await method(*args, **kwargs)
        return await asyncio.to_thread(method, *args, **kwargs)

    async def take(self, count: int, name: str, *args: object, **kwargs: object) -> list[Event]:
        """The first ``count`` events of a stream method, then the stream closed."""
        stream = getattr(self.made, name)(*args, **kwargs)
        if isinstance(self.made, AsyncClient):
            try:
                return [await anext(stream) for _ in range(count)]
            finally:
                await stream.aclose()

        def blocking() -> list[Event]:
            with stream:
                return [next(stream) for _ in range(count)]

        return await asyncio.to_thread(blocking)

    async def close(self) -> None:
        if isinstance(self.made, AsyncClient):
            await self.made.close()
        else:
            self.made.close()


@pytest.fixture(params=["async", "blocking"])
async def client(request: pytest.FixtureRequest, fake: FakeFleet) -> AsyncIterator[Either]:
    either = Either(fake, request.param)
    yield either
    await either.close()


async def test_a_429_is_waited_out_for_its_retry_after_then_answered(
    fake: FakeFleet, client: Either
) -> None:
    busy = {"error": "too_many_waiters", "message": "m", "limit": "process"}
    fake.reply("GET", f"{ORDER}/state", json_reply(429, busy, retry_after="1"),
               json_reply(200, {"version": 3, "state": {"status": "paid"}}))  # fmt: skip
    state = await client("state", "order", "o-1", min_version=3, wait_ms=100)
    assert (state.version, state.state) == (3, {"status": "paid"})
    first, second = fake.to(f"{ORDER}/state")
    assert second.at - first.at >= 1.0  # the fleet's wait, not the 10-50 ms of the policy
    assert [type(r.error) for r in client.heard] == [errors.TooManyWaitersError]
    assert client.heard[0].delay_s >= 1.0 and client.heard[0].error.retry_after_s == 1


async def test_a_retry_after_past_the_budget_is_raised_at_once(fake: FakeFleet) -> None:
    either = Either(fake, "async", budget_s=2)
    busy = {"error": "too_many_waiters", "message": "m"}
    fake.reply("GET", f"{ORDER}/state", json_reply(429, busy, retry_after="60"))
    try:
        with pytest.raises(errors.TooManyWaitersError) as raised:
            await either("state", "order", "o-1", min_version=3, wait_ms=100)
    finally:
        await either.close()
    assert raised.value.retry_after_s == 60 and either.heard == [] and len(fake.asked) == 1


async def test_an_append_told_outcome_unknown_is_sent_again_as_the_same_command(
    fake: FakeFleet, client: Either
) -> None:
    unknown = {"error": "outcome_unknown", "message": "m", "event_id": "e-1"}
    fake.reply("POST", f"{ORDER}/events", json_reply(503, unknown), json_reply(503, unknown),
               json_reply(202, {"event_id": "e-1", "duplicate": True, "version": 1}))  # fmt: skip
    appended = await client("append", "order", "o-1", "OrderPaid", {"amount": 5})
    sent = [orjson.loads(a.body) for a in fake.to(f"{ORDER}/events")]
    assert len(sent) == 3 and all(body == sent[0] for body in sent)  # one command, three tries
    assert uuid.UUID(sent[0]["command_id"]) and appended.command_id == sent[0]["command_id"]
    assert (appended.event_id, appended.duplicate, appended.stored) == ("e-1", True, False)
    assert [r.error.code for r in client.heard if isinstance(r.error, ApiError)] == [
        "outcome_unknown", "outcome_unknown"]  # fmt: skip
    assert all(a.headers["authorization"] == "Bearer t" for a in fake.asked)


async def test_tries_are_bounded_then_the_last_error_is_raised(
    fake: FakeFleet, client: Either
) -> None:
    gone = {"error": "store_unavailable", "message": "m"}
    fake.reply("GET", f"{ORDER}/state", *[json_reply(503, gone)] * 5)
    with pytest.raises(errors.StoreUnavailableError):
        await client("state", "order", "o-1")
    assert len(fake.asked) == 5 and [r.attempt for r in client.heard] == [1, 2, 3, 4]


async def test_what_no_retry_can_help_is_raised_at_the_first_answer(
    fake: FakeFleet, client: Either
) -> None:
    fake.reply("GET", f"{ORDER}/state",
               json_reply(504, {"error": "not_yet_stored", "message": "m", "stored_version": 1}),
               json_reply(409, {"error": "refused", "message": "m", "reason": "no"}),
               json_reply(401, {"error": "unauthenticated", "message": "m", "reason": "expired"}))  # fmt: skip
    for expected in (errors.NotYetStoredError, errors.RefusedError, errors.UnauthenticatedError):
        with pytest.raises(expected):
            await client("state", "order", "o-1", command_id="c", wait_ms=10)
    assert len(fake.asked) == 3 and client.heard == []


async def test_outcome_none_is_an_answer_and_another_404_an_error(
    fake: FakeFleet, client: Either
) -> None:
    fake.reply("GET", f"{ORDER}/outcome",
               json_reply(404, {"error": "not_found", "message": "m", "outcome": "none",
                                "command_id": "c-9", "event_id": None}),
               json_reply(404, {"error": "not_found", "message": "no such order"}))  # fmt: skip
    told = await client("outcome", "order", "o-1", command_id="c-9")
    assert (told.outcome, told.command_id, told.event_id) == ("none", "c-9", None)
    with pytest.raises(errors.NotFoundError, match="no such order"):
        await client("outcome", "order", "o-1", command_id="c-9")


@pytest.mark.parametrize(
    ("reply", "said"),
    [
        (Reply(200, (b"<html>hello from a proxy</html>",), (("content-type", "text/html"),)),
         "hello from a proxy"),
        (json_reply(200, {"state": {}}), "version"),  # a field missing
        (json_reply(200, {"version": "3", "state": {}}), "version"),  # of another type
        (json_reply(200, [1, 2]), "object"),
    ],
)  # fmt: skip
async def test_a_success_answer_of_another_shape_is_refused_whole_and_not_retried(
    fake: FakeFleet, client: Either, reply: Reply, said: str
) -> None:
    fake.reply("GET", f"{ORDER}/state", reply)
    with pytest.raises(AnswerError, match=said) as raised:
        await client("state", "order", "o-1")
    assert raised.value.status == 200 and "GET /v1/order/o-1/state" in str(raised.value)
    assert len(fake.asked) == 1 and client.heard == []


async def test_a_proxys_error_page_is_an_api_error_judged_by_its_status(
    fake: FakeFleet, client: Either
) -> None:
    page = Reply(502, (b"<html>bad gateway</html>",), (("content-type", "text/html"),))
    fake.reply("GET", f"{ORDER}/state", page, json_reply(200, {"version": 1, "state": {}}))
    assert (await client("state", "order", "o-1")).version == 1
    (heard,) = client.heard
    assert type(heard.error) is ApiError and heard.error.code == "http_502"


async def test_a_page_cut_mid_body_is_asked_again_and_the_walk_sees_each_event_once(
    fake: FakeFleet, client: Either
) -> None:
    page = {"events": [envelope("o-1", v) for v in (1, 2)], "more": True, "next_after_version": 2}
    last = {"events": [envelope("o-1", 3)], "more": False, "next_after_version": 3}
    whole = orjson.dumps(page)
    fake.reply("GET", f"{ORDER}/events", json_reply(200, page),
               Reply(200, (whole[: len(whole) // 2],), then="drop"), json_reply(200, last))  # fmt: skip
    walked = await client.take(3, "events", "order", "o-1", page_size=2)
    assert [e.version for e in walked] == [1, 2, 3]
    assert [a.query["after_version"] for a in fake.to(f"{ORDER}/events")] == ["0", "2", "2"]
    assert [type(r.error) for r in client.heard] == [TransportError]


async def test_a_stream_cut_mid_message_resumes_after_the_last_whole_event(
    fake: FakeFleet, client: Either
) -> None:
    first = [sse("1", envelope("o-1", 1)), sse("2", envelope("o-1", 2)),
             sse("3", envelope("o-1", 3))[:20]]  # fmt: skip
    fake.reply("GET", f"{ORDER}/subscribe",
               Reply(200, tuple(first), STREAM, then="drop"),
               Reply(200, (sse("3", envelope("o-1", 3)), sse("4", envelope("o-1", 4))), STREAM,
                     then="hold"))  # fmt: skip
    seen = await client.take(4, "subscribe", "order", "o-1")
    assert [e.version for e in seen] == [1, 2, 3, 4]  # each once, in version order
    opened = fake.to(f"{ORDER}/subscribe")
    assert "last-event-id" not in opened[0].headers and opened[1].headers["last-event-id"] == "2"
    assert all(a.query == {"after_version": "0"} for a in opened)
    assert all(a.headers["accept"] == SSE for a in opened)


async def test_a_stream_that_ends_before_any_event_is_tried_within_the_bound(
    fake: FakeFleet, client: Either
) -> None:
    fake.reply("GET", f"{ORDER}/subscribe", *[Reply(200, (b": hi\n\n",), STREAM)] * 5)
    with pytest.raises(TransportError, match="ended the stream"):
        await client.take(1, "subscribe", "order", "o-1")
    assert len(fake.asked) == 5


async def test_a_closing_notice_reconnects_after_slow_client_and_raises_a_refusal(
    fake: FakeFleet, client: Either
) -> None:
    slow = sse("1", {"error": "slow_client", "message": "too slow"}, event="slow_client")
    denied = sse("2", {"error": "forbidden", "message": "not yours", "reason": "rule"}, "error")
    fake.reply("GET", f"{ORDER}/subscribe",
               Reply(200, (sse("1", envelope("o-1", 1)), slow), STREAM),
               Reply(200, (sse("2", envelope("o-1", 2)), denied), STREAM))  # fmt: skip
    with pytest.raises(errors.ForbiddenError, match="not yours"):
        await client.take(3, "subscribe", "order", "o-1")  # two events, then the refusal
    assert [type(r.error) for r in client.heard] == [TransportError]  # slow_client: again
    assert fake.to(f"{ORDER}/subscribe")[1].headers["last-event-id"] == "1"


async def test_a_429_on_subscribe_waits_its_retry_after_and_a_401_is_raised(
    fake: FakeFleet, client: Either
) -> None:
    busy = {"error": "too_many_subscriptions", "message": "m", "limit": "principal"}
    fake.reply("GET", f"{ORDER}/subscribe", json_reply(429, busy, retry_after="1"),
               Reply(200, (sse("1", envelope("o-1", 1)),), STREAM, then="hold"))  # fmt: skip
    assert [e.version for e in await client.take(1, "subscribe", "order", "o-1")] == [1]
    first, second = fake.to(f"{ORDER}/subscribe")
    assert second.at - first.at >= 1.0
    fake.reply("GET", f"{ORDER}/subscribe", json_reply(401, {"error": "unauthenticated",
                                                             "message": "m"}))  # fmt: skip
    with pytest.raises(errors.UnauthenticatedError):
        await client.take(1, "subscribe", "order", "o-1")


@pytest.mark.parametrize(
    ("reply", "said"),
    [
        (Reply(200, (b"id: 1\ndata: {not json\n\n",), STREAM, then="hold"), "where an event"),
        (Reply(200, (sse("1", {"id": "x"}),), STREAM, then="hold"), "where an event"),
        (json_reply(200, {"events": []}), "not as a stream"),
    ],
)  # fmt: skip
async def test_a_stream_of_another_shape_is_refused_not_reconnected(
    fake: FakeFleet, client: Either, reply: Reply, said: str
) -> None:
    fake.reply("GET", f"{ORDER}/subscribe", reply)
    with pytest.raises(AnswerError, match=said):
        await client.take(1, "subscribe", "order", "o-1")
    assert len(fake.asked) == 1
