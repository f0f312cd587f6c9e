"""EventSourcedStorage on its in-memory twin: seed 003's quick start, seed 002's examples and a
crash between the two writes of the intent path, with no server at all."""

from __future__ import annotations

import pytest

from topics.envelope import Event
from topics.errors import ConcurrencyConflict, NotFound
from workers.adapters.memory import MemoryDocuments, MemoryEventStore
from workers.bus import InProcessEventBus
from workers.cqrs import (
    AggregateFactory,
    Dispatcher,
    DocumentHandler,
    new_command,
)
from workers.examples.cqrs.users import change_email, create_user
from workers.examples.storage.games_and_users import GAME_ID, run_game_example, run_user_example
from workers.storage import (
    AFTER_DOCUMENT_WRITE,
    ChangeEvents,
    DocumentDeleted,
    EventSourcedStorage,
    FaultPoint,
    FieldChangedMapper,
    apply_patch,
)

Document = dict[str, object]


async def test_the_quick_start_of_seed_003_runs_in_memory() -> None:
    bus = InProcessEventBus()
    users = EventSourcedStorage(
        MemoryDocuments("users"), events=ChangeEvents(type_prefix="User"), bus=bus,
        mapper=FieldChangedMapper("email", "UserEmailChanged", "new_email"),
    )  # fmt: skip
    factory = AggregateFactory()
    factory.register("users", lambda user_id: {"name": "", "email": ""})
    dispatcher = Dispatcher()
    dispatcher.register(
        "CreateUser", DocumentHandler(users, create_user, factory=factory, create=True)
    )
    dispatcher.register("ChangeEmail", DocumentHandler(users, change_email))
    received: list[Event] = []

    async def record(event: Event) -> None:
        received.append(event)

    await bus.subscribe("UserCreated", record)
    await bus.subscribe("UserEmailChanged", record)
    await dispatcher.dispatch(new_command("CreateUser", "user123", {"name": "John Doe",
                                                                    "email": "john@example.com"}))  # fmt: skip
    await dispatcher.dispatch(
        new_command("ChangeEmail", "user123", {"email": "john.doe@example.com"})
    )
    assert await users.get("user123") == {
        "_id": "user123", "version": 2, "name": "John Doe", "email": "john.doe@example.com",
    }  # fmt: skip
    assert [(e.type, e.version) for e in received] == [("UserCreated", 1), ("UserEmailChanged", 2)]
    history = await users.get_missing_events("user123", after_version=0)
    assert [e.type for e in history] == ["UserCreated", "UserUpdated"]
    assert users.uses_transactions is True
    await users.close()


async def test_the_examples_of_seed_002_run_in_memory() -> None:
    events = MemoryEventStore()
    game = await run_game_example(lambda name: MemoryDocuments(name, events=events))
    assert game.updated["version"] == 3 and game.updated["gold"] == 170
    assert game.mobile_state == {
        k: v for k, v in game.updated.items() if k not in ("_id", "version")
    }
    assert [e.type for e in game.deleted_events] == ["GameStateDeleted"]
    [head] = (await events.heads([("game_states", GAME_ID)])).values()
    assert head.version == 4
    bus = InProcessEventBus()
    user = await run_user_example(lambda name: MemoryDocuments(name, events=events), bus)
    assert [e.data for e in user.email_changes] == [{"new_email": "john.doe@example.com"}]


async def test_versions_tombstones_and_conflicts_hold_in_memory() -> None:
    documents = MemoryDocuments("games")
    games = EventSourcedStorage(documents, max_retries=0)
    rival = EventSourcedStorage(documents.handle())  # another process on the same documents
    created = await games.find_one_and_upsert({"gold": 1}, client_id="c")
    doc_id = str(created["_id"])
    assert len(doc_id) == 24 and int(doc_id, 16) >= 0  # an ObjectId-shaped fresh id
    with pytest.raises(NotFound):
        await games.get("nobody")

    async def racing(game: Document) -> Document:
        # Another writer changes the document between this edit's read and its write.
        await rival.find_one_and_update(doc_id, lambda g: {**g, "gold": 5}, client_id="r")
        return {**game, "gold": 2}

    with pytest.raises(ConcurrencyConflict):
        await games.find_one_and_update(doc_id, racing, client_id="c")
    assert await games.delete_one(doc_id, client_id="c")
    with pytest.raises(DocumentDeleted):
        await games.get(doc_id)
    events = await games.get_missing_events(doc_id, after_version=0)
    assert [e.version for e in events] == [1, 2, 3]
    state: object = None
    for event in events[:2]:
        state = apply_patch(event.data["diff"], state)
    assert state == {"gold": 5}


async def test_an_interrupted_change_is_completed_by_the_next_reader() -> None:
    documents = MemoryDocuments("games", transactions=False)
    games = EventSourcedStorage(documents)
    await games.find_one_and_upsert({"_id": "g1", "gold": 0}, client_id="c")

    def crash(point: FaultPoint) -> None:
        if point.point == AFTER_DOCUMENT_WRITE:
            raise RuntimeError("the process died here")

    crashing = EventSourcedStorage(documents.handle(fault_hook=crash))
    with pytest.raises(RuntimeError):
        await crashing.find_one_and_update("g1", lambda g: {**g, "gold": 7}, client_id="c")
    raw = documents.raw("g1")
    assert raw is not None and "_pending_event" in raw
    assert games.uses_transactions is False
    assert await games.recover() == 1
    assert (await games.get("g1"))["gold"] == 7
    assert [e.version for e in await games.get_missing_events("g1", after_version=0)] == [1, 2]
