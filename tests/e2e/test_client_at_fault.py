"""The client library when the fleet falters: a subscription whose process is drained and
restarted resumes with no gap and no duplicate; an append during a frozen broker is retried
with its command id until answered, and stored exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from tests.faults import TcpProxy
from tests.fleet import FleetProcess, order_items, running_fleet, start_together
from tests.waiting import wait_for, within
from workers.adapters.mongo import connect, database
from workers.client import AsyncClient, Backoff, Event, Retrying, TransportError, errors
from workers.devtools.embedded import EmbeddedStack


async def test_a_subscription_resumes_across_a_drained_and_restarted_process(
    stack: EmbeddedStack,
) -> None:
    name, account = f"client_live_{uuid.uuid4().hex[:8]}", f"a-{uuid.uuid4().hex[:6]}"
    async with running_fleet(stack, name) as writer:
        reader = await FleetProcess.for_stack(stack, name, roles="commands").start()
        restarted: FleetProcess | None = None
        reconnects: list[Retrying] = []
        seen: list[Event] = []
        write = AsyncClient(writer.url, token=writer.token)
        read = AsyncClient(reader.url, token=reader.token, reconnect=Backoff(
            attempts=400, first_s=0.05, max_s=0.5, budget_s=120, on_retry=reconnects.append,
        ))  # fmt: skip

        async def follow() -> None:
            async for event in read.subscribe("account", account):
                seen.append(event)

        def have(n: int) -> bool:
            return len(seen) >= n

        try:
            await write.append("account", account, "AccountOpened", {"owner": "Lee"})
            for _ in range(4):
                await write.append("account", account, "MoneyDeposited", {"amount": 1})
            follower = asyncio.create_task(follow())
            await wait_for(lambda: have(5), timeout_s=30, what="five events caught up")
            assert await reader.stop() == 0  # the drain ends every live connection
            for _ in range(5):  # stored while nobody serves the subscription
                await write.append("account", account, "MoneyDeposited", {"amount": 1})
            restarted = await FleetProcess(env=reader.env, roles="commands",
                                           issuer=reader.issuer).start()  # fmt: skip
            await wait_for(lambda: have(10), timeout_s=60, what="the five stored meanwhile")
            for _ in range(2):  # and it is live again
                await write.append("account", account, "MoneyDeposited", {"amount": 1})
            await wait_for(lambda: have(12), timeout_s=30, what="two live after the restart")
            assert [e.version for e in seen] == list(range(1, 13))  # no gap, no duplicate
            assert [e.id for e in seen] == [e.id async for e in write.events("account", account)]
            assert reconnects and all(isinstance(r.error, TransportError | errors.ShuttingDownError)
                                      for r in reconnects)  # fmt: skip
            assert all(r.delay_s <= 0.5 + 0.05 for r in reconnects)  # bounded by max_s
            print(f"subscription across a drain and restart: 12 events, each once in order, "
                  f"after {len(reconnects)} reconnect tries")  # fmt: skip
            assert not follower.done()
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
        finally:
            await write.close()
            await read.close()
            if restarted is not None:
                await restarted.stop()
            reader.kill()


async def test_a_subscription_refused_with_429_waits_its_retry_after_then_streams(
    stack: EmbeddedStack,
) -> None:
    name, account = f"client_429_{uuid.uuid4().hex[:8]}", f"a-{uuid.uuid4().hex[:6]}"
    async with running_fleet(stack, name, roles="commands",
                             EVENTFLEET_LIVE_MAX_PER_PRINCIPAL="1") as fleet:  # fmt: skip
        waits: list[Retrying] = []
        holder = AsyncClient(fleet.url, token=fleet.token)
        second = AsyncClient(fleet.url, token=fleet.token, reconnect=Backoff(
            attempts=5, first_s=0.05, max_s=0.1, budget_s=60, on_retry=waits.append,
        ))  # fmt: skip
        try:
            await holder.append("account", account, "AccountOpened", {"owner": "Kim"})
            first = holder.subscribe("account", account)
            assert (await anext(first)).version == 1  # the principal's one subscription
            queued = second.subscribe("account", account)
            waiting = asyncio.create_task(anext(queued))
            await wait_for(lambda: bool(waits), timeout_s=30, what="a 429, waited out")
            refused = waits[0].error
            assert isinstance(refused, errors.TooManySubscriptionsError)
            assert refused.retry_after_s == 5 and waits[0].delay_s >= 5  # Retry-After, honoured
            assert not waiting.done()
            await first.aclose()  # the one slot frees
            streamed = await within(waiting, timeout_s=30, what="the queued subscription")
            assert streamed.version == 1
            await queued.aclose()
        finally:
            await holder.close()
            await second.close()


async def test_an_append_during_a_broker_freeze_is_retried_with_its_command_id_and_stored_once(
    private_stack: EmbeddedStack, unique_name: str
) -> None:
    env = {"EVENTFLEET_KAFKA_TIMEOUT_MS": "1000"}
    commands = FleetProcess.for_stack(private_stack, unique_name, roles="commands", **env)
    appender = FleetProcess.for_stack(private_stack, unique_name, roles="appender", **env)
    await start_together(commands, appender)
    tries: list[Retrying] = []
    client = AsyncClient(commands.url, token=commands.token, timeout_s=10, retry=Backoff(
        attempts=1000, first_s=0.2, max_s=1.0, budget_s=180, on_retry=tries.append,
    ))  # fmt: skip
    order, run = f"o-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex[:6]
    kafka = private_stack.process("kafka")
    try:
        await client.append("order", f"w-{run}", "OrderPlaced", {"items": order_items()})  # warm
        kafka.pause()
        try:
            sending = asyncio.create_task(
                client.append("order", order, "OrderPlaced", {"items": order_items()})
            )

            def told_unknown() -> bool:
                if sending.done():
                    raise AssertionError(f"answered while Kafka was frozen: {sending.result()}")
                answers = _answers(tries)
                return len(answers) >= 3 and any(t.error.code == "outcome_unknown" for t in answers)

            await wait_for(told_unknown, timeout_s=90, what="503 outcome_unknown, retried thrice")
        finally:
            kafka.resume()
        appended = await within(sending, timeout_s=180, what="the append after the thaw")
        unknown = [t.error for t in _answers(tries) if t.error.code == "outcome_unknown"]
        # Every try was the same command: its 503s name the one command id and event id.
        assert {(u.body["command_id"], u.body["event_id"]) for u in unknown} == {
            (appended.command_id, appended.event_id)}  # fmt: skip

        async def stored() -> bool:
            told = await client.outcome("order", order, command_id=appended.command_id)
            return told.outcome == "stored"

        await wait_for(stored, timeout_s=60, what="the retried append stored")
        by_id, in_order = await _count(private_stack, unique_name, appended.event_id, order)
        assert (by_id, in_order) == (1, 1), "stored exactly once"
        state = await client.state("order", order, command_id=appended.command_id, wait_ms=5000)
        assert state.version == 1
        codes = sorted({t.error.code for t in _answers(tries)})
        print(f"append across a frozen broker: {len(tries)} retries ({codes}; "
              f"{len(tries) - len(_answers(tries))} without an answer), one command id, "
              f"stored {by_id} (duplicate answer: {appended.duplicate})")  # fmt: skip
    finally:
        await client.close()
        await commands.stop()
        await appender.stop()


async def test_an_append_that_gets_no_answer_is_sent_again_as_the_same_command(
    stack: EmbeddedStack, fleet: FleetProcess
) -> None:
    order = f"o-{uuid.uuid4().hex[:6]}"
    tries: list[Retrying] = []
    async with TcpProxy("127.0.0.1", int(fleet.env["EVENTFLEET_HTTP_PORT"])) as proxy:
        client = AsyncClient(f"http://{proxy.address}", token=fleet.token, timeout_s=1,
                             retry=Backoff(attempts=100, first_s=0.05, max_s=0.2, budget_s=60,
                                           on_retry=tries.append))  # fmt: skip
        try:
            proxy.hold_replies_after(order.encode())  # the fleet acts; its answers never come
            sending = asyncio.create_task(
                client.append("order", order, "OrderPlaced", {"items": order_items()})
            )
            await wait_for(lambda: len(tries) >= 3, timeout_s=30, what="three tries unanswered")
            proxy.release_replies()
            appended = await within(sending, timeout_s=60, what="the append after the release")
        finally:
            await client.close()
    assert all(isinstance(t.error, TransportError) for t in tries)
    assert appended.duplicate  # a later try was told what became of the first
    database_name = fleet.env["EVENTFLEET_MONGO_DATABASE"]

    async def stored() -> bool:
        return (await _count(stack, database_name, appended.event_id, order)) == (1, 1)

    await wait_for(stored, timeout_s=30, what="the command stored once")
    print(
        f"append without answers: {len(tries)} tries timed out, the next told duplicate; stored 1"
    )


def _answers(tries: list[Retrying]) -> list[Retrying]:
    """The retries that followed an error answer (not a broken connection)."""
    return [t for t in tries if isinstance(t.error, errors.ApiError)]


async def _count(stack: EmbeddedStack, db_name: str, event_id: str, order: str) -> tuple[int, int]:
    """(events stored with this id, events stored for the order)."""
    mongo = connect(stack.urls.mongo_url, timeout_ms=10_000)
    try:
        events = database(mongo, db_name)["events"]
        by_id = await events.count_documents({"_id": event_id})
        in_order = await events.count_documents({"aggregate_type": "order", "aggregate_id": order})
    finally:
        await mongo.close()
    return by_id, in_order
