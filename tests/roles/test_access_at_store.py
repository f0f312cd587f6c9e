"""The store judges who sent an event: the chat's edit and delete rules at the appender.

A forged ``MessageDeleted`` produced straight to the events topic (another's actor, a role its
token does not hold, a ``sender_id`` not its actor's, or no actor at all) is refused at the
store like a transition: recorded, dead-lettered, answered, its mark repaired, never stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from snapshot_rules.domain import Domains
from snapshot_rules.replay import Folded
from topics.envelope import NEW_AGGREGATE, Actor, Event, Metadata, encode, kafka_headers, new_event
from workers.adapters.memory import (
    MemoryCommandMemory,
    MemoryEventStore,
    MemoryMarker,
    MemoryProducer,
    MemoryRejections,
    MemorySnapshotStore,
)
from workers.examples.domains.chat_room import CHAT_ROOM, DELETED, EDITED, SENT
from workers.metrics import create_metrics
from workers.ports import Head, MarkRequest, Record
from workers.roles.append.appender import Appender
from workers.roles.append.book import AppenderConfig
from workers.roles.append.given import AppendStores, Replies
from workers.roles.append.judge import FORBIDDEN_AT_STORE, Waiting, judge
from workers.roles.deadletter import DeadLetters
from workers.roles.state import StateLoader
from workers.runtime.answers import reply_of

EVENTS, STORED, REPLIES, DLQ = "t.events", "t.events.stored", "t.commands.replies", "t.events.dlq"
ROOM = ("chat_room", "r1")
ALICE, BOB = Actor("alice"), Actor("bob")
MODERATOR = Actor("mia", ("moderator",))


@dataclass
class Room:
    """An appender judging access on memory adapters, and a chain of events of one room."""

    appender: Appender
    store: MemoryEventStore
    rejections: MemoryRejections
    producer: MemoryProducer
    marker: MemoryMarker
    offset: int = 0
    last: str = NEW_AGGREGATE

    def event(self, kind: str, data: dict[str, Any], actor: Actor | None) -> Event:
        """The next event of the room, validated after the last one (as the marker chains)."""
        event = new_event(
            *ROOM, kind, data, metadata=Metadata(actor=actor), after=self.last,
            schema_version=CHAT_ROOM.schema_version(kind),
        )  # fmt: skip
        self.last = event.id
        return event

    def send(self, message_id: str, actor: Actor) -> Event:
        data = {"message_id": message_id, "sender_id": actor.principal, "content": "hi"}
        return self.event(SENT, data, actor)

    def change(
        self, kind: str, message_id: str, actor: Actor | None, *, sender: str | None = None,
        role: str | None = None,
    ) -> Event:  # fmt: skip
        data: dict[str, Any] = {"message_id": message_id}
        data["sender_id"] = sender or (actor.principal if actor else "alice")
        if kind == EDITED:
            data["content"] = "changed"
        if role is not None:
            data["role"] = role
        return self.event(kind, data, actor)

    async def take(self, events: list[Event]) -> list[Record]:
        records = []
        for e in events:
            records.append(Record(EVENTS, 0, self.offset, e.key, encode(e), kafka_headers(e)))
            self.offset += 1
        return await self.appender.handle(records)

    async def history(self) -> list[str]:
        return [e.type for e in await self.store.select(ROOM)]

    async def refusal(self, event: Event) -> str:
        """The refusal's message; it must be the store's access refusal."""
        rejection = (await self.rejections.find([event.id]))[event.id]
        assert rejection.reason == FORBIDDEN_AT_STORE
        return rejection.message


def make_room(*, judge_access: bool = True) -> Room:
    metrics = create_metrics()
    store, rejections = MemoryEventStore(), MemoryRejections()
    producer, marker = MemoryProducer(default_partitions=1), MemoryMarker()
    appender = Appender(
        stores=AppendStores(
            store, rejections, loader=StateLoader(store, MemorySnapshotStore(), metrics)
        ),
        replies=Replies(producer, reply_of, marker, MemoryCommandMemory(records=marker.records)),
        dead_letters=DeadLetters(producer, topic=DLQ, role="appender", metrics=metrics),
        domains=Domains([CHAT_ROOM]),
        metrics=metrics,
        config=AppenderConfig(STORED, REPLIES, max_event_bytes=100_000, judge_access=judge_access),
    )
    return Room(appender, store, rejections, producer, marker)


@pytest.fixture
def room() -> Room:
    return make_room()


async def test_own_and_moderator_changes_are_stored(room: Room) -> None:
    events = [
        room.send("m1", ALICE),
        room.send("m2", BOB),
        room.change(EDITED, "m1", ALICE),
        room.change(DELETED, "m1", ALICE),
        room.change(DELETED, "m2", MODERATOR, role="moderator"),
    ]
    assert len(await room.take(events)) == 5
    assert await room.history() == [SENT, SENT, EDITED, DELETED, DELETED]
    assert not room.producer.records(DLQ)


async def test_a_forged_delete_with_another_actor_is_refused_and_answered(room: Room) -> None:
    sent = room.send("m1", ALICE)
    await room.take([sent])
    forged = room.change(DELETED, "m1", BOB)
    await room.marker.check_and_mark(
        MarkRequest(
            "chat_room:r1", DELETED, forged.id, [SENT, EDITED, DELETED],
            fallback=f"{SENT}|{sent.id}",
        )
    )  # fmt: skip
    assert await room.marker.peek("chat_room:r1") == (DELETED, forged.id)
    decided = await room.take([forged])
    assert len(decided) == 1 and await room.history() == [SENT]
    message = await room.refusal(forged)
    assert "alice's" in message and "not_your_message" in message
    [letter] = room.producer.records(DLQ)
    assert dict(letter.headers)["dlq_reason"] == FORBIDDEN_AT_STORE.encode()
    [reply] = room.producer.records(REPLIES)
    body = orjson.loads(reply.value)
    assert (body["status"], body["body"]["error"]) == (403, FORBIDDEN_AT_STORE)
    assert body["body"]["event_id"] == forged.id
    # The mark named the refused delete: it names the stored head again.
    assert await room.marker.peek("chat_room:r1") == (SENT, sent.id)


async def test_a_change_without_an_actor_is_refused(room: Room) -> None:
    await room.take([room.send("m1", ALICE)])
    own_but_anonymous = room.change(DELETED, "m1", None, sender="alice")
    await room.take([own_but_anonymous])
    assert await room.history() == [SENT]
    assert "no metadata.actor" in await room.refusal(own_but_anonymous)


@pytest.mark.parametrize(
    ("actor", "sender", "role", "reason"),
    [
        (BOB, "alice", None, "not_your_identity"),  # names the sender it is not
        (BOB, None, "moderator", "role_from_token"),  # a role its token does not carry
        (Actor("bob", ("admin",)), None, "admin", "role_from_token"),  # not a moderator role
    ],
)
async def test_a_body_claiming_what_the_actor_is_not_is_refused(
    room: Room, actor: Actor, sender: str | None, role: str | None, reason: str
) -> None:
    await room.take([room.send("m1", ALICE)])
    forged = room.change(DELETED, "m1", actor, sender=sender, role=role)
    await room.take([forged])
    assert await room.history() == [SENT]
    assert reason in await room.refusal(forged)


async def test_each_event_is_judged_on_the_state_at_its_predecessor(room: Room) -> None:
    # One batch: bob's delete follows alice's send of m1 in it; alice's own edit follows the
    # refused delete (validated after it) and is judged on the head, the send.
    sent = room.send("m1", ALICE)
    forged = room.change(DELETED, "m1", BOB)
    edit = room.change(EDITED, "m1", ALICE)
    await room.take([sent, forged, edit])
    assert await room.history() == [SENT, EDITED]
    assert "not_your_message" in await room.refusal(forged)


async def test_a_message_deleted_by_its_sender_stays_deleted(room: Room) -> None:
    await room.take([room.send("m1", ALICE), room.change(DELETED, "m1", ALICE)])
    again = room.change(EDITED, "m1", BOB)  # no longer in the window: the fold ignores it
    await room.take([again])
    assert await room.history() == [SENT, DELETED, EDITED]


async def test_sends_need_no_actor_and_nothing_is_judged_with_the_door_open() -> None:
    room = make_room(judge_access=False)
    events = [room.send("m1", ALICE), room.change(DELETED, "m1", None, sender="bob")]
    await room.take(events)
    assert await room.history() == [SENT, DELETED]  # stored, and ignored by the fold


async def test_the_pure_judge_judges_access_only_given_the_state() -> None:
    room = make_room()
    sent = room.send("m1", ALICE).with_version(1)
    state = Folded(CHAT_ROOM.reducer(None, sent), 1)
    forged = room.change(DELETED, "m1", BOB)
    record = Record(EVENTS, 0, 0, forged.key, encode(forged), kafka_headers(forged))
    queue = [Waiting(forged, record, deadline=0.0)]
    head = Head(1, sent.id, SENT)
    assert [w.event.id for w in judge(CHAT_ROOM, head, queue, now=0.0).store] == [forged.id]
    refused = judge(CHAT_ROOM, head, queue, now=0.0, state=state).refuse
    assert [(r.waiting.event.id, r.reason) for r in refused] == [(forged.id, FORBIDDEN_AT_STORE)]


def test_an_appender_judging_access_needs_a_loader() -> None:
    metrics = create_metrics()
    producer = MemoryProducer()
    with pytest.raises(ValueError, match="state loader"):
        Appender(
            stores=AppendStores(MemoryEventStore(), MemoryRejections()),
            replies=Replies(producer, reply_of),
            dead_letters=DeadLetters(producer, topic=DLQ, role="appender", metrics=metrics),
            domains=Domains([CHAT_ROOM]),
            metrics=metrics,
            config=AppenderConfig(STORED, REPLIES, max_event_bytes=1000, judge_access=True),
        )
