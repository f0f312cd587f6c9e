"""storage_domain: a collection's stored events replay into its documents, under the storage's names."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymongo.asynchronous.database import AsyncDatabase

from snapshot_rules.domain import Domain, Mode, Route
from snapshot_rules.replay import Folded, replay
from snapshot_rules.rules import Progress, every
from tests.storage.helpers import Document, canonical, content, raw_doc
from topics.envelope import Event, new_event, utc_now
from topics.errors import InvalidInput
from workers.adapters.mongo import MongoDocuments
from workers.storage import (
    ChangeEvents,
    EventSourcedStorage,
    FieldChangedMapper,
    merge_diff,
    storage_domain,
)
from workers.storage.changes import plan_change
from workers.storage.documents import content_of, is_deleted
from workers.storage.domain import TOMBSTONE, StorageReducer
from workers.storage.mappers import storage_event_types as storage_types
from workers.storage.ports import PlannedChange

GAMES = storage_domain("game_states", type_prefix="GameState")
MAPPER = FieldChangedMapper("a", "AChanged", "new_a")

_scalars = (
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=4)
)
_keys = st.text(alphabet="abcd", min_size=1, max_size=2)  # few keys, so changes overlap
# What the storage accepts as content: no null inside an object (null means "remove").
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner | st.none(), max_size=3) | st.dictionaries(_keys, inner, max_size=4)
    ),
    max_leaves=10,
)
documents = st.dictionaries(_keys, _values, max_size=5)
steps = st.lists(st.none() | documents, min_size=1, max_size=8)
"""A client's successive wishes for one document; None asks to delete it."""


def _plan(
    previous: Document | None, before: Document | None, after: Document | None
) -> PlannedChange:
    return plan_change(
        collection="game_states",
        doc_id="g1",
        client_id="test",
        previous=previous,
        before=before,
        after=after,
        types=storage_types("game_states", "GameState"),
        mapper=MAPPER,  # mapped domain events ride along in data.mapped
        max_event_bytes=1_000_000,
    )


def history(wishes: list[Document | None]) -> tuple[list[Event], Document | None]:
    """The events the storage writes for ``wishes`` and the document it ends with.

    The same decisions as EventSourcedStorage's upsert, update and delete: a delete of
    nothing or an update that changes nothing writes no event.
    """
    stored: Document | None = None
    events: list[Event] = []
    for wish in wishes:
        live = stored is not None and not is_deleted(stored)
        if wish is None:
            if stored is None or not live:
                continue
            change = _plan(stored, content_of(stored), None)
        elif stored is None or not live:
            change = _plan(stored, None, wish)
        elif merge_diff(content_of(stored), wish) == {}:
            continue
        else:
            change = _plan(stored, content_of(stored), wish)
        stored = change.replacement
        events.append(change.event)
    return events, stored


def without_bookkeeping(stored: Document) -> Document:
    return {k: v for k, v in stored.items() if k not in ("_id", "version")}


@settings(max_examples=300, deadline=None)
@given(steps)
def test_replaying_the_storages_events_gives_the_stored_document(
    wishes: list[Document | None],
) -> None:
    events, stored = history(wishes)
    folded = replay(GAMES.reducer, events)
    if stored is None:
        assert folded == Folded(None, 0)
        return
    assert folded.version == stored["version"]
    assert canonical(folded.state) == canonical(without_bookkeeping(stored))
    # A live document ends as the last wish (a delete wish on a live one would delete it).
    expected = TOMBSTONE if is_deleted(stored) else wishes[-1]
    assert canonical(folded.state) == canonical(expected)
    assert {event.type for event in events} <= GAMES.events.keys()


@settings(max_examples=150, deadline=None)
@given(steps, st.integers(min_value=0, max_value=8))
def test_replay_from_any_snapshot_equals_replay_from_scratch(
    wishes: list[Document | None], cut: int
) -> None:
    events, _ = history(wishes)
    cut = min(cut, len(events))
    snapshot = replay(GAMES.reducer, events[:cut])
    frozen = canonical(snapshot.state)
    resumed = replay(GAMES.reducer, events[cut:], start=snapshot)
    assert canonical(resumed.state) == canonical(replay(GAMES.reducer, events).state)
    assert resumed.version == len(events)
    assert canonical(snapshot.state) == frozen, "the reducer changed a state it was given"


def _event(type_: str, version: int, data: dict[str, Any]) -> Event:
    return new_event("game_states", "g1", type_, data, version=version)


def test_hand_built_merge_patches_fold_update_delete_and_revive() -> None:
    events = [
        _event("GameStateCreated", 1, {"operation": "create", "diff": {"gold": 100, "stats": {"hp": 10, "mp": 5}}}),
        _event("GameStateUpdated", 2, {"operation": "update", "diff": {"gold": 120, "stats": {"mp": None}}}),
        _event("GameStateUpdated", 3, {"operation": "update", "diff": {"items": ["sword"], "gold": None}}),
    ]  # fmt: skip
    updated = replay(GAMES.reducer, events)
    assert updated == Folded({"stats": {"hp": 10}, "items": ["sword"]}, 3)

    deleted = replay(GAMES.reducer, [_event("GameStateDeleted", 4, {"diff": None})], start=updated)
    assert deleted == Folded({"_deleted": True}, 4)

    revived = _event("GameStateCreated", 5, {"operation": "create", "diff": {"gold": 1}})
    assert replay(GAMES.reducer, [revived], start=deleted) == Folded({"gold": 1}, 5)


def test_events_the_storage_never_writes_leave_the_state_alone() -> None:
    state = {"gold": 1}
    assert GAMES.reducer(state, _event("SomethingElse", 2, {"diff": {"gold": 2}})) == state
    foreign = _event("GameStateUpdated", 2, {"diff": "not an object"})
    assert GAMES.reducer(state, foreign) == state
    assert GAMES.reducer(None, _event("GameStateCreated", 1, {"diff": None})) == {}


def test_the_domain_is_read_only_needs_no_validator_and_snapshots_every_50_by_default() -> None:
    assert GAMES.mode is Mode.STORAGE and GAMES.validator is None
    assert GAMES.name == "game_states" and GAMES.routes == ()
    assert set(GAMES.events) == {"GameStateCreated", "GameStateUpdated", "GameStateDeleted"}
    at = utc_now()
    assert not GAMES.snapshot_rule.should_snapshot(Progress(49, "GameStateUpdated", at))
    assert GAMES.snapshot_rule.should_snapshot(Progress(50, "GameStateUpdated", at))
    routed = storage_domain(
        "game_states",
        snapshot_rule=every(3),
        routes=[Route("games"), Route("ends", frozenset({"GameStatesDeleted"}))],
    )
    assert routed.downstream_topics() == ["games", "ends"]
    assert routed.snapshot_rule == every(3)


def test_routes_may_name_mapped_types_only_once_declared() -> None:
    emails = [Route("emails", frozenset({"UserEmailChanged"}))]
    with pytest.raises(
        ValueError, match=r"UserEmailChanged, which users never stores.*mapped_types"
    ):
        storage_domain("users", type_prefix="User", routes=emails)
    with pytest.raises(ValueError, match="names UserEmailChanged"):  # another type declared
        storage_domain("users", type_prefix="User", routes=emails, mapped_types=["UserNameChanged"])
    domain = storage_domain(
        "users", type_prefix="User", routes=emails, mapped_types=["UserEmailChanged"]
    )
    assert domain.routes[0].matches("UserEmailChanged") and not domain.routes[0].matches(
        "UserUpdated"
    )


async def test_a_stored_change_derives_its_mapped_events_with_stable_ids(
    db: AsyncDatabase[Document],
) -> None:
    users = EventSourcedStorage(
        MongoDocuments(db, "users"), events=ChangeEvents(type_prefix="User"), mapper=MAPPER
    )
    domain = storage_domain("users", type_prefix="User", mapped_types=["AChanged"])
    await users.find_one_and_upsert({"_id": "u1", "a": "x"}, client_id="c")
    await users.find_one_and_update("u1", lambda d: {**d, "a": "y"}, client_id="c")
    created, updated = await users.get_missing_events("u1", after_version=0)
    assert domain.derived(created) == []
    [derived] = domain.derived(updated)
    assert (derived.type, dict(derived.data), derived.version) == ("AChanged", {"new_a": "y"}, 2)
    assert derived.key == updated.key and derived.id != updated.id
    assert domain.derived(updated) == [derived]  # the same id every time: consumers dedupe
    await users.close()


def test_bad_names_are_refused_with_the_reason() -> None:
    with pytest.raises(InvalidInput, match="does not make a valid event type"):
        storage_domain("game_states", type_prefix="Game-State")
    with pytest.raises(ValueError, match="domain name 'Games'"):
        storage_domain("Games", type_prefix="Game")
    with pytest.raises(ValueError, match="domain name"):
        Domain(name="x y", events={}, reducer=StorageReducer(storage_types("x")), mode=Mode.STORAGE)


@pytest.mark.parametrize(
    ("collection", "prefix"),
    [("game_states", "GameState"), ("game_states", None), ("users", "User"), ("a__b_c2", None)],
)
async def test_event_types_are_the_ones_the_storage_writes(
    db: AsyncDatabase[Document], collection: str, prefix: str | None
) -> None:
    storage = EventSourcedStorage(
        MongoDocuments(db, collection), events=ChangeEvents(type_prefix=prefix)
    )
    domain = storage_domain(collection, type_prefix=prefix)
    types = storage.types
    assert list(domain.events) == [types.created, types.updated, types.deleted]
    assert isinstance(domain.reducer, StorageReducer) and domain.reducer.types == types


async def test_a_history_the_storage_wrote_replays_into_its_document(
    db: AsyncDatabase[Document],
) -> None:
    users = EventSourcedStorage(
        MongoDocuments(db, "users"), events=ChangeEvents(type_prefix="User"), mapper=MAPPER
    )
    domain = storage_domain("users", type_prefix="User")
    await users.find_one_and_upsert({"_id": "u1", "a": "x", "tags": [1, None]}, client_id="c")
    await users.find_one_and_update("u1", lambda d: {**d, "a": "y", "n": {"k": 1}}, client_id="c")
    await users.find_one_and_update("u1", lambda d: {**d, "n": {"j": 2.0}}, client_id="c")
    events = await users.get_missing_events("u1", after_version=0)
    assert [e.data.get("mapped") for e in events][1] == [
        {"type": "AChanged", "data": {"new_a": "y"}}
    ]
    doc = await users.get("u1")
    assert canonical(replay(domain.reducer, events)) == canonical(
        Folded(content(doc), doc["version"])
    )

    assert await users.delete_one("u1", client_id="c")
    events = await users.get_missing_events("u1", after_version=0)
    tombstone = await raw_doc(db, "users", "u1")
    assert tombstone is not None
    assert replay(domain.reducer, events) == Folded(without_bookkeeping(tombstone), 4)
    assert without_bookkeeping(tombstone) == TOMBSTONE

    await users.find_one_and_upsert({"_id": "u1", "a": "z"}, client_id="c")
    events = await users.get_missing_events("u1", after_version=0)
    assert replay(domain.reducer, events) == Folded({"a": "z"}, 5)
    await users.close()
