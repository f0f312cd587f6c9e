"""``eventfleet archive`` on a storage collection: the retention of ``storage_domain`` moves a
document's older events to the archive, and the storage and the fleet read both as one history."""

from __future__ import annotations

import json

from pymongo.asynchronous.database import AsyncDatabase

from tests.cli import eventfleet
from tests.storage.helpers import Document
from topics.envelope import utc_now
from workers.adapters.mongo import MongoDocuments, MongoSnapshotStore
from workers.ports import Snapshot
from workers.storage import EventSourcedStorage


async def test_archive_moves_a_storage_collections_history_and_reads_span_both(
    stack: object, db: AsyncDatabase[Document], unique_name: str
) -> None:
    storage = EventSourcedStorage(MongoDocuments(db, "games"))
    for doc_id, changes in (("g1", 10), ("g2", 4)):
        await storage.find_one_and_upsert({"_id": doc_id, "gold": 0}, client_id="server")
        for gold in range(1, changes + 1):
            await storage.find_one_and_update(
                doc_id, lambda d, gold=gold: {**d, "gold": gold}, client_id="server"
            )
    # the snapshotter's work on a fleet: g1 is covered to its head; g2 has no snapshot yet
    await MongoSnapshotStore(db).save(Snapshot("games", "g1", 11, {"gold": 10}, utc_now()))
    env = {"EVENTFLEET_MONGO_URL": stack.urls.mongo_url,  # type: ignore[attr-defined]
           "EVENTFLEET_MONGO_DATABASE": unique_name,
           "EVENTFLEET_DOMAINS": "tests.storage.archived_domains:retained_games"}  # fmt: skip
    code, before, err = await eventfleet("replay", "games", "g1", "--json", env=env)
    assert code == 0, err
    code, out, err = await eventfleet("archive", "--dry-run", "--json", env=env)
    assert code == 0, err
    [move] = json.loads(out)["moves"]
    assert (move["aggregate_id"], move["from_version"], move["through_version"]) == ("g1", 1, 8)
    code, out, err = await eventfleet("archive", "--batch", "3", env=env)
    assert code == 0 and "moved 8 events of 1 aggregates" in out, (out, err)
    assert await db["events"].count_documents({"aggregate_id": "g1"}) == 3
    assert await db["events_archive"].count_documents({"aggregate_id": "g1"}) == 8
    events = await storage.get_missing_events("g1", after_version=0)
    assert [e.version for e in events] == list(range(1, 12))
    assert [e.version for e in await storage.get_missing_events("g2", after_version=0)] == [
        1, 2, 3, 4, 5
    ]  # fmt: skip
    code, after, err = await eventfleet("replay", "games", "g1", "--json", env=env)
    assert code == 0 and json.loads(after) == json.loads(before), (after, err)
    code, out, err = await eventfleet("archive", "unknown_type", env=env)
    assert code == 2 and "unknown_type" in err, (out, err)
