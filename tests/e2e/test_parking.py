"""Per-key parking with real services (issue 38): an event the appender cannot store parks its
aggregate alone. Its later events wait, in order, in the parked queue (MongoDB, next to the event
store) and on the dead-letter topic with a sequence; other aggregates of the same partition move
on; replaying the head (fixed) or skipping it releases the rest, judged again; a replacement
appender (the first SIGKILLed) keeps the aggregate parked; a non-head entry is never replayed."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaProducer

from tests.cli import eventfleet
from tests.fleet import FleetProcess
from tests.orders import ITEMS
from tests.stress import CPU_STRESS, stressed
from tests.tokens import OPERATOR, bearer
from tests.waiting import wait_for
from topics.envelope import NEW_AGGREGATE, Event, encode, kafka_headers, new_event
from workers.adapters.kafka import plain
from workers.adapters.kafka.reader import read_topic
from workers.adapters.mongo.client import connect, database
from workers.adapters.mongo.parked import MongoParkedEvents
from workers.devtools.embedded import EmbeddedStack
from workers.roles.ops.dlq_replay import DeadLetterEntry, entries_of

DATA: dict[str, dict[str, Any]] = {
    "OrderPlaced": ITEMS, "OrderPaid": {"amount": 2}, "OrderShipped": {"carrier": "dhl"},
    "OrderDelivered": {},
}  # fmt: skip
FOLLOWERS = ("OrderPaid", "OrderShipped", "OrderDelivered")


def poisoned(oid: str) -> list[Event]:
    """An OrderPlaced of a schema version no appender here knows (written by newer code), and
    three valid events validated after it."""
    events = [new_event("order", oid, "OrderPlaced", ITEMS, after=NEW_AGGREGATE, schema_version=9)]
    for kind in FOLLOWERS:
        events.append(new_event("order", oid, kind, DATA[kind], after=events[-1].id))
    return events


def placed(oid: str) -> Event:
    return new_event("order", oid, "OrderPlaced", ITEMS, after=NEW_AGGREGATE)


async def produce(fleet: FleetProcess, events: list[Event], *, partition: int = 0) -> None:
    """Straight onto the events topic, all on one partition (as a foreign producer may)."""
    kafka = fleet.env["EVENTFLEET_KAFKA_URL"].removeprefix("kafka://")
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
    await producer.start()
    try:
        for e in events:
            await producer.send_and_wait(
                f"{fleet.prefix}events", encode(e), key=e.key, partition=partition,
                headers=list(kafka_headers(e)),
            )  # fmt: skip
    finally:
        await producer.stop()


class Look:
    """What the test reads: the parked queues, the stored histories, the dead-letter topic."""

    def __init__(self, fleet: FleetProcess) -> None:
        self.fleet = fleet
        client = connect(fleet.env["EVENTFLEET_MONGO_URL"], timeout_ms=10_000)
        self.parked = MongoParkedEvents(database(client, fleet.env["EVENTFLEET_MONGO_DATABASE"]))

    async def queue(self, oid: str) -> list[tuple[int, str | None, str]]:
        entries = await self.parked.queue(f"order:{oid}", limit=100)
        return [(e.seq, e.event_id, e.reason) for e in entries]

    async def history(self, oid: str) -> list[tuple[str, int]]:
        status, body = await self.fleet.get(f"/v1/order/{oid}/events")
        if status == 404:
            return []
        assert status == 200, body
        return [(e["type"], e["version"]) for e in body["events"]]

    async def letters(self, oid: str) -> list[DeadLetterEntry]:
        records = await read_topic(plain(self.fleet.env["EVENTFLEET_KAFKA_URL"]),
                                   f"{self.fleet.prefix}events.dlq")  # fmt: skip
        return [e for e in entries_of(records) if e.key == f"order:{oid}".encode()]

    async def parked_letters(self, oid: str, n: int) -> list[DeadLetterEntry]:
        """The dead-letter topic's entries of ``oid``'s queue, by seq (waits for ``n``)."""
        found: list[DeadLetterEntry] = []

        async def there() -> bool:
            found[:] = sorted({e.parked[1]: e for e in await self.letters(oid)
                               if e.parked is not None}.values(),
                              key=lambda e: e.parked[1] if e.parked else 0)  # fmt: skip
            return len(found) >= n

        await wait_for(there, timeout_s=60, what=f"{n} parked entries of {oid}", interval_s=0.2)
        return found


async def test_a_poison_event_parks_its_aggregate_and_replaying_the_head_releases_the_rest(
    stack: EmbeddedStack, unique_name: str
) -> None:
    fleet = await FleetProcess.for_stack(stack, unique_name).start()
    look = Look(fleet)
    run = uuid.uuid4().hex[:6]
    a, b = f"a-{run}", f"b-{run}"
    try:
        chain = poisoned(a)
        others = [placed(f"{b}-{i}") for i in range(3)]
        # On one partition: the poison, B's, A's three, B's again.
        await produce(fleet, [chain[0], others[0], *chain[1:], *others[1:]])

        async def others_stored() -> bool:
            histories = [await look.history(e.aggregate_id) for e in others]
            return histories == [[("OrderPlaced", 1)]] * len(others)

        await wait_for(others_stored, timeout_s=60, what="the other aggregates stored")
        entries = await look.parked_letters(a, 4)
        assert await look.queue(a) == [
            (1, chain[0].id, "unknown_schema_version"),
            *((i + 2, e.id, "parked") for i, e in enumerate(chain[1:])),
        ]
        assert [(e.parked, e.reason) for e in entries] == [
            ((f"order:{a}", 1), "unknown_schema_version"),
            *(((f"order:{a}", i), "parked") for i in (2, 3, 4)),
        ]
        assert await look.history(a) == []  # nothing judged against a hole

        # The CLI shows it, and refuses to replay or skip an entry behind the head.
        code, out, err = await eventfleet("dlq", "parked", "--json", env=fleet.env)
        assert code == 0, err
        [shown] = [p for p in orjson.loads(out) if p["aggregate"] == f"order:{a}"]
        assert [q["seq"] for q in shown["queue"]] == [1, 2, 3, 4] and shown["resolution"] is None
        for action in (("replay", entries[2].position, "--yes"), ("skip", entries[2].position)):
            code, _, err = await eventfleet("dlq", *action, "--operator", "ci", env=fleet.env)
            assert code == 1 and "waits behind the head of its queue" in err, err
            assert f"entry 3 of order:{a}" in err
        assert [q[0] for q in await look.queue(a)] == [1, 2, 3, 4]  # unchanged
        _, page = await fleet.get("/console/dlq")
        assert f"order:{a}" in page and 'id="parked"' in page

        # Replaying the head, fixed (the current schema version), releases the rest in order.
        fix = ("dlq", "replay", entries[0].position, "--operator", "ci", "--yes")
        code, out, err = await eventfleet(*fix, env=fleet.env)
        assert code == 0 and out.startswith("re-submit"), out + err

        async def released() -> bool:
            return len(await look.history(a)) == 4 and await look.queue(a) == []

        await wait_for(released, timeout_s=60, what=f"{a} released")
        assert await look.history(a) == [
            ("OrderPlaced", 1),
            ("OrderPaid", 2),
            ("OrderShipped", 3),
            ("OrderDelivered", 4),
        ]
        print("parking: parked 4 (1 head + 3 behind) / other aggregates stored 3 / released "
              "3 + the replayed head / stored out of order 0")  # fmt: skip
    finally:
        assert await fleet.stop() == 0, fleet.log_tail()


async def console_post(
    fleet: FleetProcess, path: str, form: list[tuple[str, str]]
) -> tuple[int, str]:
    """An operator's console action (bearer token, CSRF cookie and field)."""
    headers = {**bearer(fleet.token("ops", (OPERATOR,))), "Cookie": "eventfleet_csrf=c"}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        async with session.post(fleet.url + path, headers=headers, data=[*form, ("csrf", "c")],
                                allow_redirects=False) as r:  # fmt: skip
            return r.status, await r.text()


async def test_skipping_the_head_in_the_console_judges_the_rest_again(
    stack: EmbeddedStack, unique_name: str
) -> None:
    fleet = await FleetProcess.for_stack(
        stack, unique_name, EVENTFLEET_CONSOLE_ACTIONS="true"
    ).start()
    look = Look(fleet)
    a = f"skip-{uuid.uuid4().hex[:6]}"
    try:
        chain = poisoned(a)
        await produce(fleet, chain)
        entries = await look.parked_letters(a, 4)
        # Ticking the head and an entry behind it is refused before anything acts.
        ticked = [
            ("action", "skip"),
            ("entry", entries[0].position),
            ("entry", entries[2].position),
        ]
        for path, form in (
            (f"/console/dlq/{entries[1].position}/skip", []),
            ("/console/dlq/bulk/review", ticked),
            ("/console/dlq/bulk/confirm", ticked),
        ):
            status, page = await console_post(fleet, path, form)
            assert status == 400 and "waits behind the head of its queue" in page, (status, page)
        assert [q[0] for q in await look.queue(a)] == [1, 2, 3, 4]
        assert (await look.parked.queue(f"order:{a}", limit=1))[0].resolution is None
        status, page = await console_post(fleet, f"/console/dlq/{entries[0].position}/skip", [])
        assert status == 200 and 'id="released"' in page, page

        async def judged() -> bool:
            return await look.queue(a) == []

        await wait_for(judged, timeout_s=60, what=f"{a} released")
        # Judged again without the head: an order cannot start paid, so each is refused.
        assert await look.history(a) == []

        async def refused() -> list[str]:
            return [e.reason for e in await look.letters(a) if e.parked is None]

        await wait_for(lambda: _len_at_least(refused, 3), timeout_s=60, what="3 refusals")
        assert await refused() == ["transition_rejected_at_store"] * 3
        code, _, err = await eventfleet("dlq", "replay", entries[1].position,
                                        "--operator", "ci", "--yes", env=fleet.env)  # fmt: skip
        assert code == 1 and "was released" in err, err  # judged already: nothing to replay
        # Released: the aggregate takes events as any other.
        fresh = placed(a)
        await produce(fleet, [fresh])
        await wait_for(lambda: _equals(look.history(a), [("OrderPlaced", 1)]), timeout_s=60,
                       what=f"{a} takes events again")  # fmt: skip
        print("skip: parked 4 / released 3, each refused (transition_rejected_at_store) / stored 0")
    finally:
        assert await fleet.stop() == 0, fleet.log_tail()


@CPU_STRESS
async def test_an_appender_killed_while_an_aggregate_is_parked_is_replaced_and_keeps_it_parked(
    stack: EmbeddedStack, unique_name: str, stress: bool
) -> None:
    async with stressed(stress):
        await _killed_while_parked(stack, unique_name)


async def _killed_while_parked(stack: EmbeddedStack, unique_name: str) -> None:
    first = await FleetProcess.for_stack(stack, unique_name).start()
    look = Look(first)
    run = uuid.uuid4().hex[:6]
    a, b = f"killed-{run}", f"other-{run}"
    second: FleetProcess | None = None
    try:
        chain = poisoned(a)
        await produce(first, chain[:2])
        await look.parked_letters(a, 2)
        await first.killed()  # SIGKILL: no drain, no goodbye to the group
        second = FleetProcess(env=dict(first.env), roles=first.roles)
        await second.start(timeout_s=120)
        look.fleet = second
        other = placed(b)
        await produce(second, [*chain[2:], other])
        await wait_for(lambda: _equals(look.history(b), [("OrderPlaced", 1)]), timeout_s=90,
                       what="the other aggregate stored by the replacement")  # fmt: skip
        entries = await look.parked_letters(a, 4)
        assert [q[0] for q in await look.queue(a)] == [1, 2, 3, 4]
        assert await look.history(a) == []  # no event of A stored out of order
        code, out, err = await eventfleet("dlq", "replay", entries[0].position,
                                          "--operator", "ci", "--yes", env=second.env)  # fmt: skip
        assert code == 0, out + err
        await wait_for(lambda: _equals(look.history(a), [
            ("OrderPlaced", 1), ("OrderPaid", 2), ("OrderShipped", 3), ("OrderDelivered", 4),
        ]), timeout_s=60, what=f"{a} released in order")  # fmt: skip
        print("sigkill: parked 2 before the kill + 2 after / stored out of order 0 / released 3")
    finally:
        first.kill()
        if second is not None:
            assert await second.stop() == 0, second.log_tail()


async def _len_at_least(read: Any, n: int) -> bool:
    return len(await read()) >= n


async def _equals(value: Any, expected: Any) -> bool:
    return bool(await value == expected)
