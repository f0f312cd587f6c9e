"""A state query (snapshot + tail, replayed) next to a bare fetch and fold of the same documents."""

from __future__ import annotations

import time
import uuid

from pymongo import ASCENDING

from workers.adapters.mongo import MongoStores
from workers.adapters.records import document_to_event
from workers.devtools.bench.append import chains
from workers.devtools.bench.measure import Measured, Table
from workers.runtime.compose import Runtime


async def bench_state(runtime: Runtime, *, aggregates: int = 200, length: int = 50) -> Table:
    run = uuid.uuid4().hex[:6]
    events = chains(aggregates * length, aggregates, run)
    versions: dict[str, int] = {}
    numbered = []
    for e in events:
        versions[e.aggregate_id] = versions.get(e.aggregate_id, 0) + 1
        numbered.append(e.with_version(versions[e.aggregate_id]))
    for i in range(0, len(numbered), 1000):  # in pieces: one store call stays within its bound
        await runtime.events.append(numbered[i : i + 1000])
    rooms = sorted(versions)
    table = Table(f"state query: {aggregates} rooms of {length} events, no snapshot")
    settings = runtime.settings
    # The baseline reads the same documents with the bare driver, on a client of its own.
    bare_store = MongoStores(
        settings.mongo_url, settings.mongo_database, timeout_ms=settings.mongo_timeout_ms
    )
    collection = bare_store.events.collection
    chat_room = runtime.domains.get("chat_room")  # one of the default domains the bench runs

    async def bare() -> None:
        for room in rooms:
            query = {"aggregate_type": "chat_room", "aggregate_id": room}
            state = None
            async for doc in collection.find(query, sort=[("version", ASCENDING)]):
                state = chat_room.reducer(state, document_to_event(doc))

    async def ours() -> None:
        for room in rooms:
            await runtime.loader.latest(chat_room, room, save=False)

    results = {}
    try:
        for name, work in (("bare fetch + fold", bare), ("eventfleet state query", ours)) * 2:
            cpu, started = time.process_time(), time.perf_counter()
            await work()
            results[name] = Measured(
                name, len(rooms), time.perf_counter() - started, cpu_s=time.process_time() - cpu
            )
    finally:
        await bare_store.close()
    table.add(results["eventfleet state query"], results["bare fetch + fold"], "<= 1.25x time")
    return table
