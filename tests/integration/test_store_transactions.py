"""What the multi-aggregate append needs from the store's transactions, probed on the embedded one.

SecantusDB (the embedded MongoDB-protocol store) advertises a single-node replica set and runs
MongoDB's multi-document transactions (``start_session`` + ``start_transaction``): these tests
hold it to what the fleet relies on, with PyMongo alone, so a release that stops doing it fails
here and not somewhere down the fleet. A transaction's writes to several documents and
collections are stored all or none, a unique index violation on its third write leaves nothing
of the first two, no reader outside it sees its writes before the commit, two transactions
writing one key conflict (the second is told ``WriteConflict``, a transient transaction error,
and cannot commit), and a write outside any transaction waits for one holding its key. Run with
``--standalone``, it reports no ``setName`` (as a standalone mongod does; the fleet then runs no
transactions there: a standalone mongod refuses them).

Then the event store's append across aggregates on it, where a proxy holds the replies: an
unanswered statement stores nothing (StoreUnavailable), an unanswered commit is an unknown
outcome that lands whole; and a fleet on the standalone server refuses such an append (501).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import orjson
import pytest
from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure

from tests.faults import TcpProxy
from tests.sync.wiring import sync_wiring
from topics.envelope import Event, new_event
from topics.errors import OutcomeUnknown, StoreOutcomeUnknown, StoreUnavailable
from workers.adapters.mongo import Document, MongoEventStore, connect, database
from workers.devtools.embedded import EmbeddedStack
from workers.roles.command.multi_requests import parse_multi
from workers.runtime.multi_answers import answer_of_all

WRITE_CONFLICT = 112
NO_SUCH_TRANSACTION = 251


@pytest.fixture
async def client(stack: EmbeddedStack) -> AsyncIterator[AsyncMongoClient[Document]]:
    mongo = connect(stack.urls.mongo_url, timeout_ms=5000)
    yield mongo
    await mongo.close()


@pytest.fixture
async def db(
    client: AsyncMongoClient[Document], unique_name: str
) -> AsyncIterator[AsyncDatabase[Document]]:
    own = database(client, unique_name)
    await own.events.create_index(
        [("aggregate", ASCENDING), ("version", ASCENDING)], unique=True, name="aggregate_version"
    )
    yield own
    await client.drop_database(unique_name)


async def test_the_embedded_store_says_it_is_a_replica_set(
    client: AsyncMongoClient[Document],
) -> None:
    hello = await client.admin.command("hello")
    assert hello.get("setName") and hello.get("isWritablePrimary") is True


async def test_a_standalone_server_says_it_is_none(standalone_url: str) -> None:
    standalone = connect(standalone_url, timeout_ms=5000)
    try:
        hello = await standalone.admin.command("hello")
    finally:
        await standalone.close()
    assert "setName" not in hello and hello.get("msg") != "isdbgrid"


async def test_a_unique_violation_on_the_third_write_leaves_nothing_of_the_first_two(
    client: AsyncMongoClient[Document], db: AsyncDatabase[Document]
) -> None:
    await db.events.insert_one({"_id": "c1", "aggregate": "c", "version": 1})
    with pytest.raises(BulkWriteError) as caught:
        async with client.start_session() as session:
            async with await session.start_transaction():
                await db.events.insert_one({"_id": "a1", "aggregate": "a", "version": 1},
                                           session=session)  # fmt: skip
                await db.other.insert_one({"_id": "b1"}, session=session)  # another collection
                await db.events.insert_many(
                    [{"_id": "b2", "aggregate": "b", "version": 1},
                     {"_id": "c1-again", "aggregate": "c", "version": 1}],  # taken: stops here
                    session=session,
                )  # fmt: skip
    assert caught.value.details["writeErrors"][0]["code"] == 11000
    assert [doc["_id"] async for doc in db.events.find()] == ["c1"]
    assert await db.other.count_documents({}) == 0


async def test_no_reader_outside_sees_a_write_before_the_commit(
    client: AsyncMongoClient[Document], db: AsyncDatabase[Document]
) -> None:
    async with client.start_session() as session:
        await session.start_transaction()
        await db.events.insert_many(
            [{"_id": "a1", "aggregate": "a", "version": 1},
             {"_id": "b1", "aggregate": "b", "version": 1}], session=session,
        )  # fmt: skip
        assert await db.events.count_documents({}) == 0  # outside: nothing yet
        assert await db.events.count_documents({}, session=session) == 2  # inside: both
        await session.commit_transaction()
    assert await db.events.count_documents({}) == 2


async def test_of_two_transactions_writing_one_key_the_second_is_told_and_cannot_commit(
    client: AsyncMongoClient[Document], db: AsyncDatabase[Document]
) -> None:
    first, second = client.start_session(), client.start_session()
    try:
        await first.start_transaction()
        await second.start_transaction()
        await db.events.insert_one({"_id": "x1", "aggregate": "x", "version": 1}, session=first)
        with pytest.raises(OperationFailure) as caught:
            await db.events.insert_one(
                {"_id": "x1-other", "aggregate": "x", "version": 1}, session=second
            )
        assert caught.value.code == WRITE_CONFLICT
        assert caught.value.has_error_label("TransientTransactionError")
        await first.commit_transaction()
        with pytest.raises(OperationFailure) as refused:
            await second.commit_transaction()
        assert refused.value.code == NO_SUCH_TRANSACTION
    finally:
        await first.end_session()
        await second.end_session()
    assert [doc["_id"] async for doc in db.events.find()] == ["x1"]


async def test_a_write_outside_waits_for_the_transaction_holding_its_key(
    client: AsyncMongoClient[Document], db: AsyncDatabase[Document]
) -> None:
    async with client.start_session() as session:
        await session.start_transaction()
        await db.events.insert_one({"_id": "y1", "aggregate": "y", "version": 1}, session=session)
        outside = asyncio.create_task(
            db.events.insert_one({"_id": "y1-plain", "aggregate": "y", "version": 1})
        )
        done, _ = await asyncio.wait({outside}, timeout=0.3)
        assert not done  # held until the transaction ends, not written beside it
        await session.commit_transaction()
    with pytest.raises(DuplicateKeyError):
        await outside
    assert [doc["_id"] async for doc in db.events.find()] == ["y1"]


# The event store's append across aggregates on that store, at the edges of a fault: a statement
# or a commit whose answer never comes (the proxy passes the request on and holds every reply).


@pytest.fixture
async def proxied(
    stack: EmbeddedStack, unique_name: str
) -> AsyncIterator[tuple[MongoEventStore, MongoEventStore, TcpProxy]]:
    """The event store through a proxy (0.5 s bound), the same store direct, and the proxy."""
    target = urlsplit(stack.urls.mongo_url)
    assert target.hostname is not None and target.port is not None
    async with TcpProxy(target.hostname, target.port) as proxy:
        near = connect(stack.urls.mongo_url.replace(target.netloc, proxy.address), timeout_ms=500)
        direct = connect(stack.urls.mongo_url, timeout_ms=5000)
        try:
            store = MongoEventStore(database(direct, unique_name))
            await store.ensure_indexes()
            yield MongoEventStore(database(near, unique_name)), store, proxy
        finally:
            await direct.drop_database(unique_name)
            await near.close()
            await direct.close()


def together(*ids: str) -> list[Event]:
    return [new_event("account", i, "Changed", {}, version=1) for i in ids]


async def test_an_unanswered_statement_stores_nothing(
    proxied: tuple[MongoEventStore, MongoEventStore, TcpProxy],
) -> None:
    near, direct, proxy = proxied
    await near.append_atomically(together("warm"))  # asks hello and opens connections first
    proxy.hold_replies_after(b"insert")
    with pytest.raises(StoreUnavailable) as caught:
        await near.append_atomically(together("s1", "s2"))
    assert not isinstance(caught.value, OutcomeUnknown)  # before the commit: nothing stored
    assert "nothing was stored" in str(caught.value)
    proxy.release_replies()
    for ref in (("account", "s1"), ("account", "s2")):
        assert await direct.select(ref) == []


async def test_an_unanswered_commit_is_unknown_and_lands_whole(
    proxied: tuple[MongoEventStore, MongoEventStore, TcpProxy],
) -> None:
    near, direct, proxy = proxied
    await near.append_atomically(together("warm"))
    proxy.hold_replies_after(b"commitTransaction")
    events = together("u1", "u2", "u3")
    with pytest.raises(StoreOutcomeUnknown) as caught:
        await near.append_atomically(events)
    assert "may or may not be stored (all of them or none)" in str(caught.value)
    proxy.release_replies()
    assert proxy.held_requests >= 1
    found = await direct.find([e.id for e in events])
    assert sorted(found) == sorted(e.id for e in events)  # the commit landed: every one of them


async def test_a_fleet_on_a_standalone_server_refuses_appends_across_aggregates(
    stack: EmbeddedStack, standalone_url: str, unique_name: str
) -> None:
    """501 transactions_unsupported, nothing written; a single append goes on as before."""
    async with sync_wiring(
        kafka_url=stack.urls.kafka_url, mongo_url=standalone_url,
        redis_url=stack.urls.redis_url, name=unique_name,
    ) as wired:  # fmt: skip
        body = {"appends": [
            {"aggregate_type": "account", "aggregate_id": a, "type": "AccountOpened",
             "data": {"owner": "o"}} for a in ("z1", "z2")
        ]}  # fmt: skip
        request = parse_multi(orjson.dumps(body), max_bytes=65536, max_items=10)
        answer = answer_of_all(await wired.runtime.commands.handle_many(request))
        assert (answer.status, answer.body["error"]) == (501, "transactions_unsupported")
        assert "replica set" in str(answer.body["message"])
        assert await wired.stored("z1") == [] and await wired.stored("z2") == []
        single = await wired.append("z1", "AccountOpened", owner="o")
        assert single.event.version == 1
