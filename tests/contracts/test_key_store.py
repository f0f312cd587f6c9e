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
    fresh = await keys.store.key_for("ann")  # ann comes back: new data, a new key
    assert fresh.key_id != ann.key_id and await keys.store.find([ann.key_id]) == {}


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
            await down.erase("ann", by="dpo", at=utc_now())
