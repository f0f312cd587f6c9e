"""The two storage examples, runnable: a game state three clients share, a user profile.

``collection`` gives the document store of a collection by name, on MongoDB or in memory:

game = await run_game_example(lambda name: MongoDocuments(db, name))   # three clients
user = await run_user_example(lambda name: MemoryDocuments(name), bus)  # UserEmailChanged
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from topics.envelope import Event
from topics.jsonvalue import JsonObject
from workers.ports import EventBus
from workers.storage.diff import apply_patch
from workers.storage.mappers import ChangeEvents, FieldChangedMapper
from workers.storage.ports import Document, DocumentStore
from workers.storage.storage import EventSourcedStorage

GAME_ID = "game-1"
USER_ID = "user-123"

Collections = Callable[[str], DocumentStore]
"""The document store of a collection, by the collection's name."""


@dataclass(frozen=True, slots=True)
class GameExample:
    """What the game example did: the server's document, what the mobile client caught up on."""

    created: Document
    updated: Document
    mobile_events: tuple[Event, ...]
    mobile_state: JsonObject
    deleted_events: tuple[Event, ...]


async def run_game_example(collection: Collections) -> GameExample:
    """The game server creates a state, two clients change it, a phone catches up from version 1."""
    games = EventSourcedStorage(
        collection("game_states"), events=ChangeEvents(type_prefix="GameState")
    )
    created = await games.find_one_and_upsert(
        {"_id": GAME_ID, "player": "hero", "gold": 100, "experience": 0, "level": 1},
        client_id="game-server",
    )
    # The phone saw version 1, then went offline.
    mobile_version, mobile_state = created["version"], _content(created)

    def loot(game: Document) -> Document:
        game["gold"] += 20
        game["experience"] += 150
        return game

    def grant(game: Document) -> Document:
        game["gold"] += 50
        game["experience"] += 100
        game["level"] = 1 + game["experience"] // 200
        return game

    await games.find_one_and_update(GAME_ID, loot, client_id="game-server")
    updated, _ = await games.find_one_and_update(GAME_ID, grant, client_id="admin-panel")

    # Back online: the phone asks for what it missed and applies the diffs in order.
    missed = await games.get_missing_events(GAME_ID, after_version=mobile_version)
    for event in missed:
        mobile_state = apply_patch(event.data["diff"], mobile_state)

    await games.delete_one(GAME_ID, client_id="admin-panel")
    after_delete = await games.get_missing_events(GAME_ID, after_version=updated["version"])
    await games.close()
    return GameExample(created, updated, tuple(missed), mobile_state, tuple(after_delete))


@dataclass(frozen=True, slots=True)
class UserExample:
    """What the user example did: the profile and the events the bus delivered."""

    profile: Document
    stored_events: tuple[Event, ...]
    email_changes: tuple[Event, ...]


async def run_user_example(collection: Collections, bus: EventBus) -> UserExample:
    """A profile whose email change also yields ``UserEmailChanged {new_email}`` on the bus."""
    received: list[Event] = []

    async def on_email_changed(event: Event) -> None:
        received.append(event)

    subscription = await bus.subscribe("UserEmailChanged", on_email_changed)
    users = EventSourcedStorage(
        collection("users"),
        events=ChangeEvents(type_prefix="User"),
        bus=bus,
        mapper=FieldChangedMapper("email", "UserEmailChanged", "new_email"),
    )
    await users.find_one_and_upsert(
        {"_id": USER_ID, "name": "John Doe", "email": "john@example.com"}, client_id="signup"
    )

    def rename(user: Document) -> Document:
        return {**user, "name": "John D."}

    def change_email(user: Document) -> Document:
        return {**user, "email": "john.doe@example.com"}

    await users.find_one_and_update(USER_ID, rename, client_id="profile-page")
    profile, _ = await users.find_one_and_update(USER_ID, change_email, client_id="profile-page")
    stored = await users.get_missing_events(USER_ID, after_version=0)
    await subscription.cancel()
    await users.close()
    return UserExample(profile, tuple(stored), tuple(received))


def _content(doc: Document) -> JsonObject:
    """What a client rebuilds from diffs: the document without ``_id`` and ``version``."""
    return {k: v for k, v in doc.items() if k not in ("_id", "version")}
