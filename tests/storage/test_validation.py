"""Bad input is refused with a sentence that names the problem, and nothing is written."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from tests.storage.helpers import Document, raw_doc, raw_events
from topics.errors import InvalidInput
from workers.adapters.mongo import MongoDocuments
from workers.runtime.settings import Settings
from workers.storage import CachePolicy, ChangeEvents, EventSourcedStorage
from workers.storage.mappers import DEFAULT_MAX_EVENT_BYTES


def _deep(levels: int) -> dict[str, Any]:
    doc: dict[str, Any] = {"leaf": 1}
    for _ in range(levels):
        doc = {"n": doc}
    return doc


BAD_CONTENT = [
    pytest.param({"a.b": 1}, "document.a.b: field names may not", id="dotted-key"),
    pytest.param({"profile": {"$set": 1}}, r"document.profile.\$set: field names", id="dollar-key"),
    pytest.param({"list": [{"x.y": 1}]}, r"document.list\[0\].x.y: field names", id="key-in-array"),
    pytest.param({"tags": {1, 2}}, "document.tags: set is not a JSON value", id="set"),
    pytest.param({"at": datetime.now(UTC)}, "datetime is not a JSON value", id="datetime"),
    pytest.param({"score": float("nan")}, "NaN and infinity are not JSON", id="nan"),
    pytest.param({"big": 2**64}, "does not fit in 64 bits", id="huge-int"),
    pytest.param({"raw": b"x"}, "bytes is not a JSON value", id="bytes"),
    pytest.param({"nick": None}, "document.nick: null inside an object", id="null"),
    pytest.param({"_deleted": True}, "'_deleted' is reserved", id="reserved"),
    pytest.param(_deep(40), "nested deeper than", id="too-deep"),
]


@pytest.fixture
async def users(db: AsyncDatabase[Document]) -> EventSourcedStorage:
    storage = EventSourcedStorage(MongoDocuments(db, "users"))
    await storage.find_one_and_upsert({"_id": "u1", "name": "Ann"}, client_id="signup")
    return storage


async def _unchanged(db: AsyncDatabase[Document]) -> None:
    assert await raw_doc(db, "users", "u1") == {"_id": "u1", "version": 1, "name": "Ann"}
    assert len(await raw_events(db, "users", "u1")) == 1


@pytest.mark.parametrize(("bad", "message"), BAD_CONTENT)
async def test_bad_documents_are_refused_on_create(
    users: EventSourcedStorage, db: AsyncDatabase[Document], bad: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        await users.find_one_and_upsert({"_id": "u2", **bad}, client_id="signup")
    assert "users u2" in str(caught.value)
    assert await raw_doc(db, "users", "u2") is None and await raw_events(db, "users", "u2") == []


@pytest.mark.parametrize(("bad", "message"), BAD_CONTENT)
async def test_bad_edits_are_refused_and_write_nothing(
    users: EventSourcedStorage, db: AsyncDatabase[Document], bad: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        await users.find_one_and_update("u1", lambda u: {**u, **bad}, client_id="c")
    await _unchanged(db)


BAD_EDITS: list[Any] = [
    pytest.param(lambda u: {**u, "_id": "u9"}, "changed '_id' from 'u1' to 'u9'", id="moves-id"),
    pytest.param(lambda u: {**u, "version": 7}, "changed 'version' from 1 to 7", id="sets-version"),
    pytest.param(lambda u: {"name": "x"}, "changed '_id' from 'u1' to None", id="drops-id"),
    pytest.param(lambda u: None, "the edit returned NoneType", id="returns-none"),
    pytest.param(lambda u: [u], "the edit returned list", id="returns-list"),
]


@pytest.mark.parametrize(("edit", "message"), BAD_EDITS)
async def test_edits_may_not_touch_id_or_version_or_return_a_non_document(
    users: EventSourcedStorage, db: AsyncDatabase[Document], edit: Callable[..., Any], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        await users.find_one_and_update("u1", edit, client_id="c")
    await _unchanged(db)


async def test_an_edit_that_raises_writes_nothing(
    users: EventSourcedStorage, db: AsyncDatabase[Document]
) -> None:
    def refuse(user: Document) -> Document:
        raise ValueError("not enough gold")

    with pytest.raises(ValueError, match="not enough gold"):
        await users.find_one_and_update("u1", refuse, client_id="c")
    await _unchanged(db)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(lambda s: s.get("has space"), "document id 'has space' is not valid", id="id"),
        pytest.param(lambda s: s.get(42), "document id 42 is not valid", id="int-id"),
        pytest.param(
            lambda s: s.delete_one("", client_id="c"), "document id '' is not", id="empty"
        ),
        pytest.param(
            lambda s: s.find_one_and_upsert({"_id": "u3", "version": 4}, client_id="c"),
            "the storage sets 'version'",
            id="given-version",
        ),
        pytest.param(
            lambda s: s.find_one_and_upsert([1], client_id="c"), "must be a dict", id="list"
        ),
        pytest.param(
            lambda s: s.delete_one("u1", client_id=""), "client_id '' is not valid", id="client"
        ),
        pytest.param(
            lambda s: s.find_one_and_update("u1", dict, client_id="x" * 257),
            "client_id",
            id="long-client",
        ),
        *(
            pytest.param(
                lambda s, v=v: s.get_missing_events("u1", after_version=v),
                "after_version .* is not valid; use the last version",
                id=f"after-{v!r}",
            )
            for v in (-1, "3", 1.5, True, None)
        ),
    ],
)
async def test_bad_arguments_are_refused(
    users: EventSourcedStorage, db: AsyncDatabase[Document], call: Any, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        await call(users)
    await _unchanged(db)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"collection_name": "Users"}, "collection name 'Users' is not valid"),
        ({"collection_name": "game-states"}, "must match"),
        ({"collection_name": "events"}, "collection 'events' is the fleet's own"),
        ({"collection_name": "snapshots"}, "the fleet's own"),
        ({"collection_name": "users", "max_retries": -1}, "max_retries=-1"),
        (
            {"collection_name": "users", "events": ChangeEvents(type_prefix="9x")},
            "prefix '9x' does not make",
        ),
    ],
)
def test_bad_construction_is_refused(
    db: AsyncDatabase[Document], kwargs: dict[str, Any], message: str
) -> None:
    name = kwargs.pop("collection_name")
    with pytest.raises(InvalidInput, match=message):
        EventSourcedStorage(MongoDocuments(db, name), **kwargs)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: CachePolicy(ttl_s=0), r"CachePolicy ttl_s=0: use a number of seconds > 0"),
        (lambda: CachePolicy(ttl_s=-1.5), r"CachePolicy ttl_s=-1\.5: use a number"),
        (lambda: CachePolicy(ttl_s=True), r"CachePolicy ttl_s=True: use a number"),
        (
            lambda: CachePolicy(ttl_s=60, max_entries=0),
            r"CachePolicy max_entries=0: use an integer >= 1",
        ),
        (
            lambda: ChangeEvents(max_event_bytes=0),
            r"ChangeEvents max_event_bytes=0: use an integer >= 1",
        ),
        (
            lambda: ChangeEvents(max_event_bytes=-5),
            r"ChangeEvents max_event_bytes=-5: use an integer",
        ),
    ],
)
def test_a_bad_cache_or_event_limit_is_refused_naming_the_field(
    build: Callable[[], object], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        build()


def test_the_grouped_settings_have_their_documented_defaults() -> None:
    assert CachePolicy(ttl_s=60).max_entries == 10_000
    assert ChangeEvents() == ChangeEvents(
        type_prefix=None,
        event_types=None,
        version_field="version",
        max_event_bytes=DEFAULT_MAX_EVENT_BYTES,
    )


async def test_a_change_whose_event_is_too_large_for_the_stream_is_refused(
    db: AsyncDatabase[Document],
) -> None:
    users = EventSourcedStorage(
        MongoDocuments(db, "users"), events=ChangeEvents(max_event_bytes=2048)
    )
    await users.find_one_and_upsert({"_id": "u1", "name": "Ann"}, client_id="signup")
    with pytest.raises(InvalidInput, match=r"would be \d+ bytes, over the 2048-byte limit"):
        await users.find_one_and_update("u1", lambda u: {**u, "bio": "x" * 3000}, client_id="c")
    await _unchanged(db)


def test_the_storage_event_size_default_is_the_fleets() -> None:
    assert DEFAULT_MAX_EVENT_BYTES == Settings().max_event_bytes
