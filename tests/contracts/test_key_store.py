"""KeyStore contract, on memory and MongoDB: one key per subject, found by id, erased for good."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

import pytest

from tests.contracts.conftest import STORES, unreachable_mongo
from topics.envelope import utc_now
from topics.errors import StoreError, StoreUnavailable
from workers.adapters.memory import MemoryKeyStore
from workers.adapters.mongo import DATA_KEYS, MongoKeyStore, connect, database
from workers.devtools.embedded import EmbeddedStack
from workers.ports import KeyStore

MASTER = b"m" * 32


@dataclass
class Keys:
    kind: str
    store: KeyStore
    outage: Callable[[], AbstractAsyncContextManager[KeyStore]]
    raw: Callable[[], AbstractAsyncContextManager[list[bytes]]] | None = None


@pytest.fixture(params=STORES)
async def keys(
    request: pytest.FixtureRequest, stack: EmbeddedStack, unique_name: str
) -> AsyncIterator[Keys]:
    if request.param == "memory":
        store = MemoryKeyStore()

        @asynccontextmanager
        async def down() -> AsyncIterator[KeyStore]:
            store.down()
            try:
                yield store
            finally:
                store.up()

        yield Keys("memory", store, down)
        return
    url = stack.urls.mongo_url
    client = connect(url, timeout_ms=5000)
    db = database(client, unique_name)

    @asynccontextmanager
    async def outage() -> AsyncIterator[KeyStore]:
        async with unreachable_mongo(url, unique_name) as unreachable:
            yield MongoKeyStore(unreachable, MASTER)

    @asynccontextmanager
    async def raw() -> AsyncIterator[list[bytes]]:
        from bson import encode

        yield [encode(d) async for d in db[DATA_KEYS].find({})]

    try:
        store = MongoKeyStore(db, MASTER)
        await store.ensure_indexes()
        yield Keys("mongo", store, outage, raw)
    finally:
        await client.drop_database(unique_name)
        await client.close()


async def test_one_key_per_subject_even_when_asked_at_once(keys: Keys) -> None:
    found = await asyncio.gather(*(keys.store.key_for("ann") for _ in range(10)))
    assert len({(k.key_id, k.secret) for k in found}) == 1
    ann = found[0]
    assert ann.subject == "ann" and len(ann.secret) == 32
    bob = await keys.store.key_for("bob")
    assert bob.key_id != ann.key_id and bob.secret != ann.secret
    assert await keys.store.find([ann.key_id, bob.key_id, "nope"]) == {
        ann.key_id: ann, bob.key_id: bob,
    }  # fmt: skip
    assert await keys.store.find([]) == {}


async def test_erasing_destroys_the_key_and_a_new_one_follows(keys: Keys) -> None:
    ann = await keys.store.key_for("ann")
    bob = await keys.store.key_for("bob")
    at = utc_now()
    erasure = await keys.store.erase("ann", by="dpo", at=at)
    assert erasure is not None
    assert (erasure.subject, erasure.by, erasure.keys_destroyed, erasure.already) == (
        "ann", "dpo", 1, False,
    )  # fmt: skip
    assert await keys.store.find([ann.key_id, bob.key_id]) == {bob.key_id: bob}
    again = await keys.store.erase("ann", by="someone else", at=utc_now())
    assert again is not None and again.already and again.keys_destroyed == 0
    assert again.by == "dpo" and abs((again.erased_at - at).total_seconds()) < 0.01
    assert await keys.store.erase("nobody", by="dpo", at=utc_now()) is None
    back = await asyncio.gather(*(keys.store.key_for("ann") for _ in range(10)))
    fresh = back[0]  # ann comes back: new data, one new key however many ask at once
    assert {k.key_id for k in back} == {fresh.key_id} and fresh.key_id != ann.key_id
    assert await keys.store.find([ann.key_id]) == {}


async def test_of_concurrent_erasers_exactly_one_destroys_the_key_and_the_rest_are_told(
    keys: Keys,
) -> None:
    for round_ in range(10):
        subject = f"ann-{round_}"
        await keys.store.key_for(subject)
        answers = await asyncio.gather(
            *(keys.store.erase(subject, by=f"op{i}", at=utc_now()) for i in range(4))
        )
        assert all(a is not None for a in answers), answers  # never "nothing was sealed"
        first = [a for a in answers if a is not None and not a.already]
        assert len(first) == 1 and first[0].keys_destroyed == 1, answers
        for again in (a for a in answers if a is not None and a.already):
            assert (again.by, again.keys_destroyed) == (first[0].by, 0)
            assert abs((again.erased_at - first[0].erased_at).total_seconds()) < 0.01


async def test_live_names_each_live_key_and_never_a_destroyed_one(keys: Keys) -> None:
    ann, bob = await keys.store.key_for("ann"), await keys.store.key_for("bob")
    assert await keys.store.live(["ann", "bob", "nobody", "ann"]) == {
        "ann": ann.key_id, "bob": bob.key_id,
    }  # fmt: skip
    assert await keys.store.live([]) == {}
    await keys.store.erase("ann", by="dpo", at=utc_now())
    assert await keys.store.live(["ann", "bob"]) == {"bob": bob.key_id}
    fresh = await keys.store.key_for("ann")
    assert await keys.store.live(["ann"]) == {"ann": fresh.key_id} != {"ann": ann.key_id}
    assert await keys.store.find([ann.key_id, fresh.key_id]) == {fresh.key_id: fresh}
    erasure = await keys.store.erase("ann", by="dpo2", at=utc_now())  # the new key goes too
    assert erasure is not None and not erasure.already and erasure.by == "dpo2"


async def test_keys_made_while_erasing_are_live_or_erased_never_both(keys: Keys) -> None:
    await keys.store.key_for("ann")
    made, erased = await asyncio.gather(
        asyncio.gather(*(keys.store.key_for("ann") for _ in range(5))),
        keys.store.erase("ann", by="dpo", at=utc_now()),
    )
    assert erased is not None and not erased.already
    live = (await keys.store.live(["ann"])).get("ann")
    for key in made:  # made before the erasure: destroyed; after it: the new live key
        found = await keys.store.find([key.key_id])
        assert found == ({key.key_id: key} if key.key_id == live else {})


@pytest.mark.parametrize("keys", ["mongo"], indirect=True)  # the memory twin keeps no bytes
async def test_an_erased_key_leaves_a_tombstone_without_the_key(keys: Keys) -> None:
    assert keys.raw is not None
    ann = await keys.store.key_for("ann")
    async with keys.raw() as before:
        [wrapped] = before
    await keys.store.erase("ann", by="dpo", at=utc_now())
    async with keys.raw() as docs:
        [tombstone] = docs
    from bson import decode

    doc = decode(tombstone)
    assert "wrapped" not in doc and doc["by"] == "dpo" and doc["key_id"] == ann.key_id
    assert decode(wrapped)["wrapped"] not in tombstone


@pytest.mark.parametrize("keys", ["mongo"], indirect=True)
async def test_an_erasure_recorded_before_tombstones_is_still_answered(keys: Keys) -> None:
    assert isinstance(keys.store, MongoKeyStore)
    at = utc_now()
    await keys.store.erasures.insert_one(
        {"_id": "old", "erased_at": at, "by": "dpo", "keys_destroyed": 1}
    )
    again = await keys.store.erase("old", by="eve", at=utc_now())
    assert again is not None and again.already and again.by == "dpo"


@pytest.mark.parametrize("keys", ["mongo"], indirect=True)  # the memory twin keeps no bytes
async def test_the_stored_key_is_wrapped_never_in_the_clear(keys: Keys) -> None:
    assert keys.raw is not None
    ann = await keys.store.key_for("ann")
    async with keys.raw() as docs:
        assert len(docs) == 1
        assert ann.secret not in docs[0] and base64.b64encode(ann.secret) not in docs[0]
    assert isinstance(keys.store, MongoKeyStore)
    other = MongoKeyStore(keys.store.keys.database, b"x" * 32)
    with pytest.raises(StoreError, match="does not open with this master key"):
        await other.find([ann.key_id])


async def test_a_store_that_does_not_answer_is_unavailable(keys: Keys) -> None:
    async with keys.outage() as down:
        with pytest.raises(StoreUnavailable):
            await down.key_for("ann")
        with pytest.raises(StoreUnavailable):
            await down.find(["k"])
        with pytest.raises(StoreUnavailable):
            await down.live(["ann"])
        with pytest.raises(StoreUnavailable):
            await down.erase("ann", by="dpo", at=utc_now())
