"""MongoDB's multi-document transactions: whether the server runs them, and the events of several
aggregates stored in one (``MongoEventStore.append_atomically``).

A replica set or a sharded cluster runs them; a standalone mongod refuses them
(``IllegalOperation``: "Transaction numbers are only allowed on a replica set member or mongos"), so
there the append is refused before anything is sent, never written in part. Which error a failure
becomes depends on when it came: before the commit nothing is stored (the transaction aborts, or the
server reaps it), so a statement that went unanswered is StoreUnavailable; an unanswered commit
is looked up by event id, and only when the events are not found is it StoreOutcomeUnknown.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import OperationFailure, PyMongoError

from topics.envelope import Event
from topics.errors import StoreOutcomeUnknown, StoreUnavailable
from workers.adapters.mongo.client import Document, translated
from workers.adapters.records import refs_of
from workers.ports import AggregateRef, AppendConflict

TRANSIENT = "TransientTransactionError"
UNKNOWN_COMMIT = "UnknownTransactionCommitResult"


class MongoEventStore(Protocol):
    """What of ``workers.adapters.mongo.stores.MongoEventStore`` a transaction uses."""

    @property
    def collection(self) -> AsyncCollection[Document]: ...

    async def append(
        self,
        events: Sequence[Event],
        *,
        session: AsyncClientSession | None = None,
        pending_publish: bool = False,
    ) -> None: ...

    async def find(
        self, ids: Sequence[str], *, aggregates: Sequence[AggregateRef] = ()
    ) -> dict[str, Event]: ...


async def supports_transactions(client: AsyncMongoClient[Document]) -> bool:
    """Replica sets and mongos run multi-document transactions; a standalone server does not."""
    async with translated("asking the server whether it runs transactions"):
        hello = await client.admin.command("hello")
    return bool(hello.get("setName")) or hello.get("msg") == "isdbgrid"


async def append_in_transaction(
    store: MongoEventStore, events: Sequence[Event], *, pending_publish: bool
) -> None:
    """``events`` (checked, versioned) stored in one transaction, or none of them; see
    ``AtomicAppends.append_atomically`` for what is raised."""
    client = store.collection.database.client
    what = f"storing {len(events)} events of {len(refs_of(events))} aggregates in one transaction"
    try:
        async with client.start_session() as session:
            async with await session.start_transaction():  # aborted by any error in it
                await store.append(events, session=session, pending_publish=pending_publish)
    except AppendConflict as e:
        raise await _conflict(store, e) from e
    except StoreOutcomeUnknown as e:  # a statement, not the commit (that raises PyMongoError)
        if _conflicted(e.__cause__):
            raise raced(events) from e
        raise StoreUnavailable(
            f"MongoDB did not answer while {what}; nothing was stored (the transaction never "
            "committed)."
        ) from e
    except PyMongoError as e:  # the commit
        await _commit_failed(store, events, e, what)


async def _conflict(store: MongoEventStore, e: AppendConflict) -> AppendConflict:
    """The statement's conflict as the whole write's: nothing stored, the id asked outside."""
    failed = e.failed
    id_taken = bool(await store.find([failed.id]))  # by id alone: taken under any aggregate
    what = f"event {failed.id}" if id_taken else f"version {failed.version}"
    return AppendConflict(
        f"{failed.aggregate_type} {failed.aggregate_id}: {what} is already stored; nothing of "
        "the transaction was stored.",
        inserted=0,
        failed=failed,
        id_taken=id_taken,
    )


def raced(events: Sequence[Event]) -> AppendConflict:
    """Another writer held one of the versions when the transaction wrote it: none stored."""
    first = events[0]
    return AppendConflict(
        f"another writer was storing one of the versions of {_named(events)} at the same time; "
        "nothing of the transaction was stored.",
        inserted=0,
        failed=first,
        id_taken=False,
    )


async def _commit_failed(
    store: MongoEventStore, events: Sequence[Event], error: PyMongoError, what: str
) -> None:
    """Return if the commit landed after all; raise what the failure means otherwise."""
    if _conflicted(error) and not error.has_error_label(UNKNOWN_COMMIT):
        raise raced(events) from error  # aborted by the server (a conflict at the commit)
    try:
        async with translated(what, write=True):
            raise error
    except StoreUnavailable as unanswered:
        # Retrying the whole write could store it twice under random ids: look, don't guess.
        try:
            found = await store.find([e.id for e in events], aggregates=refs_of(events))
        except StoreUnavailable:
            found = {}
        if len(found) == len({e.id for e in events}):
            return
        raise StoreOutcomeUnknown(
            f"MongoDB did not answer the commit while {what}; the events may or may not be "
            "stored (all of them or none)."
        ) from unanswered


def _conflicted(error: BaseException | None) -> bool:
    """The server aborted the transaction (``WriteConflict``, ``NoSuchTransaction``): a
    transient error it answered, not one the driver labels so for a connection or a timeout."""
    return (
        isinstance(error, OperationFailure)
        and not error.timeout
        and error.has_error_label(TRANSIENT)
    )


def _named(events: Sequence[Event]) -> str:
    refs = refs_of(events)
    shown = ", ".join(f"{t} {i}" for t, i in refs[:3])
    return shown + (f" and {len(refs) - 3} more" if len(refs) > 3 else "")
