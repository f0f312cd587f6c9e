"""The fleet example declares the storage examples' collections under the names they write."""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase

from snapshot_rules.domain import Mode
from snapshot_rules.replay import Folded, replay
from tests.storage.helpers import Document, content
from workers.adapters.mongo import MongoDocuments
from workers.bus import InProcessEventBus
from workers.examples.domains import default_domains
from workers.examples.storage.games_and_users import GAME_ID, run_game_example, run_user_example
from workers.runtime.loading import load_domains
from workers.storage import ChangeEvents, EventSourcedStorage
from workers.storage.domain import TOMBSTONE

SPEC = "workers.examples.storage.fleet:domains_with_storage"


def test_the_defaults_plus_the_two_collections_load_as_eventfleet_domains() -> None:
    domains = load_domains(SPEC)
    assert domains.names() == sorted([*default_domains().names(), "game_states", "users"])
    for name in ("game_states", "users"):
        assert domains.get(name).mode is Mode.STORAGE
    assert domains.get("game_states").downstream_topics() == ["game_states"]
    # The email mapper's events go downstream as records of their own type, to their own topic.
    assert domains.get("users").downstream_topics() == ["users", "user_emails"]
    assert domains.get("users").derived_types == {"UserEmailChanged"}


async def test_the_examples_histories_replay_with_the_declared_domains(
    db: AsyncDatabase[Document],
) -> None:
    domains = load_domains(SPEC)
    games, users = domains.get("game_states"), domains.get("users")

    game = await run_game_example(lambda name: MongoDocuments(db, name))
    reader = EventSourcedStorage(
        MongoDocuments(db, "game_states"), events=ChangeEvents(type_prefix="GameState")
    )
    history = await reader.get_missing_events(GAME_ID, after_version=0)
    assert {e.type for e in history} == games.events.keys()
    assert replay(games.reducer, history[:3]) == Folded(content(game.updated), 3)
    assert replay(games.reducer, history) == Folded(TOMBSTONE, 4)
    await reader.close()

    bus = InProcessEventBus()
    user = await run_user_example(lambda name: MongoDocuments(db, name), bus)
    await bus.close()
    assert {e.type for e in user.stored_events} <= users.events.keys()
    assert replay(users.reducer, user.stored_events) == Folded(content(user.profile), 3)
