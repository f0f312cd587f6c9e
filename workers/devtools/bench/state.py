"""A state query (snapshot + tail, replayed) next to a bare fetch and fold of the same documents."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence

from pymongo import ASCENDING

from snapshot_rules.domain import Domain
from workers.adapters.mongo import MongoStores
from workers.adapters.records import document_to_event
from workers.devtools.bench.append import chains
from workers.devtools.bench.measure import Measured, Table, Target, load_average, timed
from workers.runtime.compose import Runtime


async def bench_state(
    runtime: Runtime,
    *,
    aggregates: int = 200,
    length: int = 50,
    store_pid: int | None = None,
    rounds: int = 3,
) -> Table:
    """Both sides in this process, interleaved, alternating order; CPU per query counts this
    process and, when the bench started the store, the store's process too (``store_pid``):
    a query that makes the store work harder is not cheaper for doing it elsewhere."""
    rooms = await written_rooms(runtime, aggregates, length)
    counted = "this process + the store" if store_pid else "this process (the store is not ours)"
    table = Table(
        f"state query: {aggregates} rooms of {length} events, no snapshot; CPU of {counted}; "
        f"{rounds} interleaved rounds; {load_average()}"
    )
    settings = runtime.settings
    # The baseline reads the same documents with the bare driver, on a client of its own.
    bare_store = MongoStores(
        settings.mongo_url, settings.mongo_database, timeout_ms=settings.mongo_timeout_ms
    )
    chat_room = runtime.domains.get("chat_room")  # one of the default domains the bench runs
    bare = bare_fold(bare_store, chat_room, rooms)

    async def ours() -> None:
        for room in rooms:
            await runtime.loader.latest(chat_room, room, save=False)

    sides = (("bare fetch + fold", bare), ("eventfleet state query", ours))
    results: dict[str, list[Measured]] = {name: [] for name, _ in sides}
    try:
        await bare()  # warm both: the first pass pays for the store's cache, not the query
        await ours()
        for r in range(rounds):
            for name, work in sides if r % 2 == 0 else sides[::-1]:
                results[name].append(await timed(name, len(rooms), work, store_pid=store_pid))
    finally:
        await bare_store.close()
    table.add(
        results["eventfleet state query"], results["bare fetch + fold"], Target(cpu_at_most=1.2)
    )
    return table


async def written_rooms(runtime: Runtime, aggregates: int, length: int) -> list[str]:
    """``aggregates`` chat rooms of ``length`` events each, stored (no snapshot); their ids."""
    events = chains(aggregates * length, aggregates, uuid.uuid4().hex[:6])
    versions: dict[str, int] = {}
    numbered = []
    for e in events:
        versions[e.aggregate_id] = versions.get(e.aggregate_id, 0) + 1
        numbered.append(e.with_version(versions[e.aggregate_id]))
    for i in range(0, len(numbered), 1000):  # in pieces: one store call stays within its bound
        await runtime.events.append(numbered[i : i + 1000])
    return sorted(versions)


def bare_fold(
    store: MongoStores, domain: Domain, rooms: Sequence[str]
) -> Callable[[], Awaitable[None]]:
    """The baseline: each room's documents read with the bare driver and folded, in turn."""
    collection = store.events.collection

    async def bare() -> None:
        for room in rooms:
            query = {"aggregate_type": domain.name, "aggregate_id": room}
            state = None
            async for doc in collection.find(query, sort=[("version", ASCENDING)]):
                state = domain.reducer(state, document_to_event(doc))

    return bare
