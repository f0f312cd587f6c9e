"""Event mappers and the two shipped examples (game state, user profile with the email mapper)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from tests.storage.helpers import Document, raw_doc, raw_events
from topics.envelope import Event
from topics.errors import InvalidInput
from workers.adapters.mongo import MongoDocuments
from workers.bus import InProcessEventBus
from workers.examples.storage.games_and_users import (
    GAME_ID,
    USER_ID,
    run_game_example,
    run_user_example,
)
from workers.storage import (
    ChainMapper,
    Change,
    ChangeEvents,
    DomainEvent,
    EventSourcedStorage,
    FieldChangedMapper,
)

EMAIL = FieldChangedMapper("email", "UserEmailChanged", "new_email")


def _change(
    operation: str, before: Document | None, after: Document | None, paths: Sequence[str]
) -> Change:
    return Change("users", "u1", operation, 2, "c", before, after, None, tuple(paths))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (_change("update", {"email": "a"}, {"email": "b"}, ["email"]), [{"new_email": "b"}]),
        (_change("update", {"email": "a", "n": 1}, {"email": "a", "n": 2}, ["n"]), []),
        (_change("update", {"email": "a"}, {}, ["email"]), []),  # removed: nothing to announce
        (_change("create", None, {"email": "a"}, ["email"]), []),
        (_change("delete", {"email": "a"}, None, ["email"]), []),
    ],
)
def test_the_email_mapper_announces_new_addresses_only(
    change: Change, expected: list[Document]
) -> None:
    assert [e.data for e in EMAIL.map(change)] == expected


def test_field_mappers_follow_nested_fields_and_chain() -> None:
    nested = FieldChangedMapper("contact.email", "EmailChanged", "email", on_create=True)
    levels = FieldChangedMapper("stats", "StatsChanged", "stats")
    both = ChainMapper((nested, levels))
    created = _change(
        "create", None, {"contact": {"email": "a"}, "stats": {"hp": 1}}, ["contact", "stats"]
    )
    assert both.map(created) == [
        DomainEvent("EmailChanged", {"email": "a"})
    ]  # levels: no on_create
    hp = _change("update", {"stats": {"hp": 1}}, {"stats": {"hp": 2}}, ["stats.hp"])
    assert both.map(hp) == [DomainEvent("StatsChanged", {"stats": {"hp": 2}})]


async def test_mapped_events_ride_in_the_one_stored_event_and_reach_the_bus(
    db: AsyncDatabase[Document],
) -> None:
    bus = InProcessEventBus()
    seen: list[Event] = []

    async def record(event: Event) -> None:
        seen.append(event)

    await bus.subscribe("*", record)
    users = EventSourcedStorage(
        MongoDocuments(db, "users"), events=ChangeEvents(type_prefix="User"), bus=bus, mapper=EMAIL
    )
    await users.find_one_and_upsert({"_id": "u1", "email": "a@x.io"}, client_id="signup")
    await users.find_one_and_update("u1", lambda u: {**u, "email": "b@x.io"}, client_id="web")

    stored = await users.get_missing_events("u1", after_version=0)
    assert [(e.type, e.version) for e in stored] == [("UserCreated", 1), ("UserUpdated", 2)]
    assert stored[1].data["mapped"] == [
        {"type": "UserEmailChanged", "data": {"new_email": "b@x.io"}}
    ]
    assert "mapped" not in stored[0].data
    assert [(e.type, e.version) for e in seen] == [
        ("UserCreated", 1),
        ("UserUpdated", 2),
        ("UserEmailChanged", 2),
    ]
    derived = seen[2]
    assert derived.data == {"new_email": "b@x.io"} and derived.metadata.client_id == "web"
    assert (derived.aggregate_type, derived.aggregate_id) == ("users", "u1")
    assert derived.id != stored[1].id
    await bus.close()


class BrokenMapper:
    """Returns something that is not a domain event."""

    def map(self, change: Change) -> Sequence[DomainEvent]:
        return [DomainEvent("bad type!", {})]


class FailingMapper:
    def map(self, change: Change) -> Sequence[DomainEvent]:
        raise RuntimeError("mapper bug")


async def test_a_failing_or_broken_mapper_writes_nothing(db: AsyncDatabase[Document]) -> None:
    plain = EventSourcedStorage(MongoDocuments(db, "users"))
    await plain.find_one_and_upsert({"_id": "u1", "email": "a"}, client_id="signup")
    broken = EventSourcedStorage(MongoDocuments(db, "users"), mapper=BrokenMapper())
    with pytest.raises(InvalidInput, match="users u1: the event mapper returned"):
        await broken.find_one_and_update("u1", lambda u: {**u, "email": "b"}, client_id="c")
    failing = EventSourcedStorage(MongoDocuments(db, "users"), mapper=FailingMapper())
    with pytest.raises(RuntimeError, match="mapper bug"):
        await failing.find_one_and_update("u1", lambda u: {**u, "email": "b"}, client_id="c")
    assert await raw_doc(db, "users", "u1") == {"_id": "u1", "version": 1, "email": "a"}
    assert len(await raw_events(db, "users", "u1")) == 1


async def test_the_game_example(db: AsyncDatabase[Document]) -> None:
    game = await run_game_example(lambda name: MongoDocuments(db, name))
    assert game.created["version"] == 1
    assert game.updated == {
        "_id": GAME_ID,
        "version": 3,
        "player": "hero",
        "gold": 170,
        "experience": 250,
        "level": 2,
    }
    assert [(e.version, e.metadata.client_id) for e in game.mobile_events] == [
        (2, "game-server"),
        (3, "admin-panel"),
    ]
    assert game.mobile_events[1].data["diff"] == {"gold": 170, "experience": 250, "level": 2}
    assert game.mobile_state == {
        k: v for k, v in game.updated.items() if k not in ("_id", "version")
    }
    [deleted] = game.deleted_events
    assert (deleted.type, deleted.version, deleted.data["diff"]) == ("GameStateDeleted", 4, None)


async def test_the_user_example(db: AsyncDatabase[Document]) -> None:
    bus = InProcessEventBus()
    user = await run_user_example(lambda name: MongoDocuments(db, name), bus)
    assert user.profile == {
        "_id": USER_ID,
        "version": 3,
        "name": "John D.",
        "email": "john.doe@example.com",
    }
    assert [e.type for e in user.stored_events] == ["UserCreated", "UserUpdated", "UserUpdated"]
    [changed] = user.email_changes  # the rename did not announce an email change
    assert changed.type == "UserEmailChanged" and changed.version == 3
    assert changed.data == {"new_email": "john.doe@example.com"}
    await bus.close()
