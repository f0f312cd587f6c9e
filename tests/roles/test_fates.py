"""An accepted event the appender dead-letters: its command is told so (issue 19). On the memory
adapters, the command side of a newer fleet (it knows one more order event type) and an older
appender (that type unknown, a smaller record limit) share the store, the marks and the memory."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace

import orjson
import pytest

from snapshot_rules.domain import Domains, event
from tests.clock import Clock
from tests.orders import ITEMS
from tests.roles.command_side import command_side
from topics.envelope import (
    NEW_AGGREGATE,
    Actor,
    Metadata,
    command_scope,
    decode,
    derived_event_id,
    encode,
    kafka_headers,
    new_event,
)
from topics.errors import StoreUnavailable
from workers.adapters.memory import (
    MemoryAppendProgress,
    MemoryCommandMemory,
    MemoryEventStore,
    MemoryMarker,
    MemoryProducer,
    MemoryRejections,
)
from workers.examples.domains.order import ORDER
from workers.metrics import create_metrics
from workers.ports import Record
from workers.roles.append.appender import Appender
from workers.roles.append.book import AppenderConfig
from workers.roles.append.fates import DeadLetterFates
from workers.roles.append.given import AppendStores, Replies
from workers.roles.command.commands import CommandDispatcher
from workers.roles.command.requests import CommandRequest
from workers.roles.deadletter import DeadLetters
from workers.roles.outcomes import Outcomes
from workers.runtime.answers import Answer, answer_of, reply_of

EVENTS, STORED, REPLIES, DLQ = "t.events", "t.events.stored", "t.commands.replies", "t.events.dlq"
LIMIT = 1024  # the older appender's EVENTFLEET_MAX_EVENT_BYTES
NEWER_ORDER = replace(
    ORDER, events={**ORDER.events, "OrderGiftWrapped": event(after=["OrderPlaced"])}
)


@dataclass
class Fleet:
    """A newer command side and an older appender over shared memory adapters."""

    commands: CommandDispatcher
    outcomes: Outcomes
    appender: Appender
    store: MemoryEventStore
    rejections: MemoryRejections
    producer: MemoryProducer
    marker: MemoryMarker
    taken: int = 0

    async def send(self, kind: str, data: object, *, command_id: str, oid: str = "o1") -> Answer:
        request = CommandRequest("order", oid, kind, data, command_id=command_id)  # type: ignore[arg-type]
        return answer_of(await self.commands.handle(request))

    def produced(self) -> list[Record]:
        """The events topic's records the appender has not taken yet."""
        records = self.producer.records(EVENTS)[self.taken :]
        self.taken += len(records)
        return [
            Record(EVENTS, 0, self.taken - len(records) + i, r.key, r.value, tuple(r.headers))
            for i, r in enumerate(records)
        ]

    async def ask(self, command_id: str, oid: str = "o1") -> dict[str, object] | None:
        return await self.outcomes.ask("order", oid, command_id=command_id)

    def replies(self) -> list[dict[str, object]]:
        return [orjson.loads(r.value) for r in self.producer.records(REPLIES)]

    def dead_letters(self) -> list[bytes]:
        return [dict(r.headers)["dlq_reason"] for r in self.producer.records(DLQ)]


@pytest.fixture
def fleet() -> Fleet:
    clock, metrics = Clock(), create_metrics()
    store, rejections = MemoryEventStore(), MemoryRejections()
    producer, marker = MemoryProducer(default_partitions=1), MemoryMarker(clock=clock)
    memory = MemoryCommandMemory(clock=clock, records=marker.records)
    newer, older = Domains([NEWER_ORDER]), Domains([ORDER])
    commands = command_side(
        domains=newer, marker=marker, memory=memory, store=store, rejections=rejections,
        producer=producer, progress=MemoryAppendProgress(producer, EVENTS), events_topic=EVENTS,
        metrics=metrics, answer_wait_s=0.2, refusal_wait_s=0.05,
    )  # fmt: skip
    replies = Replies(producer, reply_of, marker, memory)
    fates = DeadLetterFates(
        store=store, rejections=rejections, replies=replies, replies_topic=REPLIES
    )
    appender = Appender(
        stores=AppendStores(store, rejections),
        replies=replies,
        dead_letters=DeadLetters(producer, topic=DLQ, role="appender", metrics=metrics),
        domains=older,
        metrics=metrics,
        config=AppenderConfig(STORED, REPLIES, max_event_bytes=LIMIT, wait_s=2.0),
        fates=fates,
        clock=clock,
    )
    outcomes = Outcomes(domains=newer, store=store, rejections=rejections, memory=memory)
    return Fleet(commands, outcomes, appender, store, rejections, producer, marker)


async def test_an_accepted_event_of_a_type_the_appender_does_not_know_is_told_dead_lettered(
    fleet: Fleet,
) -> None:
    assert (await fleet.send("OrderPlaced", ITEMS, command_id="place")).status == 202
    await fleet.appender.handle(fleet.produced())
    accepted = await fleet.send("OrderGiftWrapped", {}, command_id="wrap")
    assert accepted.status == 202  # the newer command side knows the type
    asked = await fleet.ask("wrap")
    assert asked is not None and asked["outcome"] == "accepted"
    decided = await fleet.appender.handle(fleet.produced())
    assert len(decided) == 1 and fleet.dead_letters() == [b"unknown_event_type"]

    asked = await fleet.ask("wrap")
    assert asked is not None and asked["outcome"] == "rejected"
    assert asked["reason"] == "unknown_event_type" and asked["dead_lettered"] is True
    for _ in range(2):  # a retry is told the fate, never a fresh or duplicate 202
        retry = await fleet.send("OrderGiftWrapped", {}, command_id="wrap")
        assert retry.status == 422, retry
        assert (
            retry.body["error"] == "dead_lettered" and retry.body["reason"] == "unknown_event_type"
        )
        assert retry.body["event_id"] == accepted.body["event_id"]
    [reply] = fleet.replies()
    assert reply["status"] == 422 and reply["body"]["command_id"] == "wrap"  # type: ignore[index]
    # The mark named an event that will never be stored: gone, so the next request reads the store.
    assert await fleet.marker.peek("order:o1") is None
    assert (await fleet.send("OrderPaid", {"amount": 2}, command_id="pay")).status == 202
    await fleet.appender.handle(fleet.produced())
    assert [e.type for e in await fleet.store.select(("order", "o1"))] == [
        "OrderPlaced",
        "OrderPaid",
    ]


async def test_an_accepted_event_over_the_appenders_limit_is_told_dead_lettered_oversized(
    fleet: Fleet,
) -> None:
    items = {"items": [{"sku": f"s{i:060d}", "qty": 1, "price": 1} for i in range(20)]}
    assert (await fleet.send("OrderPlaced", items, command_id="big")).status == 202
    assert len(fleet.producer.records(EVENTS)[0].value) > LIMIT
    await fleet.appender.handle(fleet.produced())
    asked = await fleet.ask("big")
    assert asked is not None and (asked["outcome"], asked["reason"]) == ("rejected", "oversized")
    retry = await fleet.send("OrderPlaced", items, command_id="big")
    assert (retry.status, retry.body["reason"]) == (422, "oversized")


def garbled(aggregate_id: str, headers: list[tuple[str, bytes]]) -> Record:
    return Record(EVENTS, 0, 500, f"order:{aggregate_id}".encode(), b'{"id": "trunc', headers)


async def test_unreadable_bytes_are_told_by_their_headers_only_when_the_headers_agree(
    fleet: Fleet,
) -> None:
    good_id = derived_event_id("order", "o7", "c7")
    readable = garbled("o7", [("event_id", good_id.encode()), ("command_id", b"c7")])
    forged = garbled("o8", [("event_id", good_id.encode()), ("command_id", b"c8")])
    bare = Record(EVENTS, 0, 502, None, b"\xff\x00 not an event")
    decided = await fleet.appender.handle([readable, forged, bare])
    assert len(decided) == 3 and fleet.dead_letters() == [b"undecodable"] * 3
    asked = await fleet.ask("c7", "o7")
    assert asked is not None and (asked["outcome"], asked["reason"]) == ("rejected", "undecodable")
    assert await fleet.ask("c8", "o8") is None  # its event id is not its command's: unknown
    assert set(await fleet.rejections.find([good_id, derived_event_id("order", "o8", "c8")])) == {
        good_id
    }
    assert len(fleet.replies()) == 1


async def test_a_dead_lettered_copy_of_a_stored_or_waiting_event_decides_nothing(
    fleet: Fleet,
) -> None:
    assert (await fleet.send("OrderPlaced", ITEMS, command_id="place")).status == 202
    [placed_record] = fleet.produced()
    placed = decode(placed_record.value)
    await fleet.appender.handle([placed_record])
    # A stored event copied back onto the events topic (already versioned).
    copy = encode(placed.with_version(1))
    versioned = Record(EVENTS, 0, 600, placed.key, copy, tuple(kafka_headers(placed)))
    # An event waiting for its predecessor, and a garbled copy of it in the same batch.
    shipped = new_event("order", "o1", "OrderShipped", {"carrier": "x"}, after=str(uuid.uuid4()),
                        metadata=Metadata(command_id="ship"))  # fmt: skip
    shipped = replace(shipped, id=derived_event_id("order", "o1", "ship"))
    waiting = Record(EVENTS, 0, 601, shipped.key, encode(shipped), tuple(kafka_headers(shipped)))
    shipped_garbled = garbled("o1", kafka_headers(shipped))
    decided = await fleet.appender.handle([versioned, waiting, shipped_garbled])
    assert {r.offset for r in decided} == {600, 500}  # the waiting one stays unacked
    assert await fleet.rejections.find([placed.id, shipped.id]) == {}
    assert fleet.replies() == []
    asked = await fleet.ask("place")
    assert asked is not None and asked["outcome"] == "stored"


async def test_a_store_down_while_a_fate_is_recorded_leaves_the_letter_undecided(
    fleet: Fleet,
) -> None:
    assert (await fleet.send("OrderPlaced", ITEMS, command_id="place")).status == 202
    await fleet.appender.handle(fleet.produced())
    assert (await fleet.send("OrderGiftWrapped", {}, command_id="wrap")).status == 202
    records = fleet.produced()
    fleet.rejections.fail_next(1, on="record")
    with pytest.raises(StoreUnavailable):
        await fleet.appender.handle(records)
    asked = await fleet.ask("wrap")
    assert asked is not None and asked["outcome"] == "accepted"  # nothing decided yet
    decided = await fleet.appender.handle(records)  # the agent retries the batch
    assert [r.offset for r in decided] == [1]
    asked = await fleet.ask("wrap")
    assert asked is not None and asked["reason"] == "unknown_event_type"
    assert fleet.dead_letters() == [b"unknown_event_type"]  # sent once: after the fate


async def test_a_dead_letter_after_a_judged_refusal_keeps_the_first_decision(fleet: Fleet) -> None:
    wrong = new_event("order", "o2", "OrderPaid", {"amount": 1}, after=NEW_AGGREGATE,
                      metadata=Metadata(command_id="pay"))  # fmt: skip
    wrong = replace(wrong, id=derived_event_id("order", "o2", "pay"))
    refused = Record(EVENTS, 0, 700, wrong.key, encode(wrong), tuple(kafka_headers(wrong)))
    await fleet.appender.handle([refused])
    await fleet.appender.handle([garbled("o2", kafka_headers(wrong))])
    asked = await fleet.ask("pay", "o2")
    assert asked is not None and asked["reason"] == "transition_rejected_at_store"
    assert "dead_lettered" not in asked


async def test_a_readable_copy_stored_after_a_garbled_one_makes_the_command_stored(
    fleet: Fleet,
) -> None:
    """The garbled copy came first (the readable one was dropped on the way and redelivered):
    its fate was told, then the store took the event; the store is the truth from then on."""
    assert (await fleet.send("OrderPlaced", ITEMS, command_id="place")).status == 202
    [readable] = fleet.produced()
    await fleet.appender.handle([garbled("o1", list(readable.headers))])
    asked = await fleet.ask("place")
    assert asked is not None and asked["reason"] == "undecodable"
    await fleet.appender.handle([readable])
    asked = await fleet.ask("place")
    assert asked is not None and asked["outcome"] == "stored"
    retry = await fleet.send("OrderPlaced", ITEMS, command_id="place")
    assert retry.status == 202 and retry.body["duplicate"] and retry.body["version"] == 1, retry


async def test_a_principals_command_is_told_its_fate_by_its_scope_and_only_to_it(
    fleet: Fleet,
) -> None:
    """An authenticated sender's command id is scoped (topics.envelope.command_scope): the
    fate of its dead-lettered event is found by that scope, from the event or its headers."""
    carol = Actor("carol")
    assert (await fleet.send("OrderPlaced", ITEMS, command_id="p5", oid="o5")).status == 202
    await fleet.appender.handle(fleet.produced())
    request = CommandRequest("order", "o5", "OrderGiftWrapped", {}, command_id="w1", actor=carol)
    assert answer_of(await fleet.commands.handle(request)).status == 202
    (record,) = fleet.produced()
    assert dict(record.headers)["command_scope"] == command_scope("w1", carol).encode()
    scope = command_scope("g1", carol)
    garbled_id = derived_event_id("order", "o6", scope)
    headers = [("event_id", garbled_id.encode()), ("command_id", b"g1")]
    unreadable = garbled("o6", [*headers, ("command_scope", scope.encode())])
    mismatched = garbled("o9", [*headers, ("command_scope", command_scope("x", carol).encode())])
    await fleet.appender.handle([record, unreadable, mismatched])
    for oid, command_id, reason in (
        ("o5", "w1", "unknown_event_type"),
        ("o6", "g1", "undecodable"),
    ):
        asked = await fleet.outcomes.ask("order", oid, command_id=command_id, actor=carol)
        assert asked is not None and (asked["outcome"], asked["reason"]) == ("rejected", reason)
        assert await fleet.outcomes.ask("order", oid, command_id=command_id) is None  # not carol
        bob = Actor("bob")
        assert await fleet.outcomes.ask("order", oid, command_id=command_id, actor=bob) is None
    retry = answer_of(await fleet.commands.handle(request))  # the memory learned the fate
    assert (retry.status, retry.body["error"]) == (422, "dead_lettered"), retry.body
    # A scope that is not the command id's names no command for sure: told to no one.
    assert await fleet.outcomes.ask("order", "o9", command_id="g1", actor=carol) is None
