"""Seed 003's quick start, as written there: a command dispatched to an aggregate kept in
EventSourcedStorage, ``UserCreated`` received on the in-memory, Redis and NATS buses; an
update that creates a missing document; mapper events on the bus as their own type."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from tests.storage.helpers import Document, raw_events
from tests.waiting import wait_for
from topics.envelope import Event, Metadata
from topics.errors import InvalidInput, NotFound, UnknownAggregateType
from workers.adapters.mongo import MongoDocuments
from workers.adapters.nats import NatsEventBus
from workers.adapters.redis import RedisEventBus
from workers.bus import InProcessEventBus
from workers.cqrs import (
    AggregateFactory,
    Dispatcher,
    DocumentHandler,
    UnknownCommand,
    new_command,
)
from workers.devtools.embedded import EmbeddedStack
from workers.examples.cqrs.users import change_email, create_user
from workers.ports import EventBus
from workers.storage import ChangeEvents, DocumentDeleted, EventSourcedStorage, FieldChangedMapper

NATS_URL = "nats://127.0.0.1:4222"


@pytest.fixture(params=["inprocess", "redis", "nats"])
async def bus(request: pytest.FixtureRequest, stack: EmbeddedStack) -> AsyncIterator[EventBus]:
    name = uuid.uuid4().hex[:10]
    made: EventBus
    if request.param == "inprocess":
        made = InProcessEventBus()
    elif request.param == "redis":
        made = RedisEventBus(stack.urls.redis_url, stream=f"qs.{name}", group_prefix=f"qs.{name}")
    else:
        made = NatsEventBus(NATS_URL, stream=f"QS_{name.upper()}", subject_prefix=f"qs.{name}")
    yield made
    await made.close()


async def test_the_quick_start_of_seed_003(db: AsyncDatabase[Document], bus: EventBus) -> None:
    users = EventSourcedStorage(
        MongoDocuments(db, "users"), events=ChangeEvents(type_prefix="User"), bus=bus,
        mapper=FieldChangedMapper("email", "UserEmailChanged", "new_email"),
    )  # fmt: skip
    factory = AggregateFactory()
    factory.register("users", lambda user_id: {"name": "", "email": "", "plan": "free"})
    dispatcher = Dispatcher()
    dispatcher.register(
        "CreateUser", DocumentHandler(users, create_user, factory=factory, create=True)
    )
    dispatcher.register("ChangeEmail", DocumentHandler(users, change_email))

    welcomed: list[str] = []
    emails: list[Event] = []

    async def welcome(event: Event) -> None:
        welcomed.append(event.aggregate_id)  # "환영합니다! 새 사용자가 생성되었습니다"

    async def email_changed(event: Event) -> None:
        emails.append(event)

    await bus.subscribe("UserCreated", welcome)
    await bus.subscribe("UserEmailChanged", email_changed)
    create = new_command("CreateUser", "user123", {"name": "John Doe", "email": "john@example.com"})
    handled = await dispatcher.dispatch(create)

    assert [e.type for e in handled.events] == ["UserCreated"]
    assert await users.get("user123") == {
        "_id": "user123", "version": 1, "name": "John Doe", "email": "john@example.com",
        "plan": "free",
    }  # fmt: skip
    await wait_for(lambda: welcomed == ["user123"], timeout_s=15, what="UserCreated on the bus")
    page = Metadata(client_id="profile-page")
    email = new_command("ChangeEmail", "user123", {"email": "john.doe@example.com"}, metadata=page)
    changed = await dispatcher.dispatch(email)
    assert [(e.type, e.version, e.metadata.client_id) for e in changed.events] == [
        ("UserUpdated", 2, "profile-page")
    ]
    await wait_for(lambda: len(emails) == 1, timeout_s=15, what="UserEmailChanged on the bus")
    assert (emails[0].aggregate_id, dict(emails[0].data)) == (
        "user123", {"new_email": "john.doe@example.com"},
    )  # fmt: skip
    stored = await raw_events(db, "users", "user123")
    assert [e["type"] for e in stored] == ["UserCreated", "UserUpdated"]  # stored once each
    await users.close()


async def test_update_creates_a_missing_document_only_when_asked(
    db: AsyncDatabase[Document],
) -> None:
    users = EventSourcedStorage(
        MongoDocuments(db, "users"), events=ChangeEvents(type_prefix="User")
    )

    def set_email(user: Document | None) -> Document:
        user = user or {"name": "John Doe"}  # seed 003: `user, ok := doc.(*User); if !ok {...}`
        return {**user, "email": "john.doe@example.com"}

    with pytest.raises(NotFound, match="users u1 does not exist"):
        await users.update("u1", set_email, client_id="t")
    created = await users.update("u1", set_email, client_id="t", create=True)
    assert created.document == {"_id": "u1", "version": 1, "name": "John Doe",
                                "email": "john.doe@example.com"}  # fmt: skip
    assert created.event is not None and created.event.type == "UserCreated"
    again = await users.update("u1", set_email, client_id="t", create=True)  # exists: an update
    assert again.event is None and again.diff == {}  # nothing changed: no event
    await users.delete_one("u1", client_id="t")
    with pytest.raises(DocumentDeleted):
        await users.update("u1", set_email, client_id="t")
    revived = await users.update("u1", set_email, client_id="t", create=True)
    assert revived.document["version"] == 3  # versions continue after the tombstone
    with pytest.raises(InvalidInput, match="leave _id out or keep 'u2'"):
        await users.update("u2", lambda _: {"_id": "other"}, client_id="t", create=True)
    with pytest.raises(InvalidInput, match="return the new document"):
        await users.update("u2", lambda _: ["not", "a", "document"], client_id="t", create=True)
    with pytest.raises(InvalidInput, match="leave it out of a new document"):
        await users.update("u2", lambda _: {"version": 7}, client_id="t", create=True)
    assert [e["version"] for e in await raw_events(db, "users", "u2")] == []  # nothing written
    await users.close()


async def test_dispatching_what_nobody_handles_is_refused(db: AsyncDatabase[Document]) -> None:
    users = EventSourcedStorage(
        MongoDocuments(db, "users"), events=ChangeEvents(type_prefix="User")
    )
    dispatcher = Dispatcher()
    dispatcher.register("CreateUser", DocumentHandler(users, create_user, create=True,
                                                      factory=AggregateFactory()))  # fmt: skip
    with pytest.raises(UnknownCommand, match="no handler is registered for command DeleteUser"):
        await dispatcher.dispatch(new_command("DeleteUser", "u1"))
    with pytest.raises(UnknownAggregateType, match=r"factory\.register\('users'"):
        await dispatcher.dispatch(new_command("CreateUser", "u1", {"name": "x"}))
    with pytest.raises(ValueError, match="already has a handler"):
        dispatcher.register("CreateUser", DocumentHandler(users, create_user))
    with pytest.raises(ValueError, match="must be an identifier"):
        dispatcher.register("create user", DocumentHandler(users, create_user))
    without = DocumentHandler(users, change_email)  # no create: a missing user is NotFound
    with pytest.raises(NotFound):
        await without(new_command("ChangeEmail", "nobody", {"email": "a@b"}))
    refused: Any = DocumentHandler(users, create_user, create=True)
    await refused(new_command("CreateUser", "u9", {"name": "A"}))
    with pytest.raises(InvalidInput, match="user u9 exists already"):
        await refused(new_command("CreateUser", "u9", {"name": "B"}))
    assert (await users.get("u9"))["name"] == "A"
    await users.close()
