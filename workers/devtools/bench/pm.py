"""A process manager (one command per stored event) next to a bare consumer sending the same
commands through the same command door, in this process, interleaved.

The first row prices the process manager's own work per event: its instance read, the
conditional write of its decision (the outbox) before the command goes out, and the write that
drops the answered command, a batch at a time. The command door's work (a marker call, a
produce to the events topic) is on both sides; neither side stores events (no appender runs:
the commands stay on the events topic). On SecantusDB a document write costs about a
millisecond of the store's CPU, so the second row holds it against a baseline that makes the
same two writes of the same documents with the bare driver besides the same sends: what the
process manager adds beyond the I/O its guarantee needs. Both sides send as the manager's
principal, which has no write budget here: the default (200 writes a second) would measure the
budget, not the sides.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence

from pymongo import ReplaceOne, WriteConcern
from pymongo.asynchronous.collection import AsyncCollection

from snapshot_rules.process import Processes, ProcessManager, Reaction, Send, State
from topics.envelope import Event, new_event
from workers.adapters.mongo import Document, MongoStores
from workers.adapters.mongo.client import DURABLE
from workers.devtools.bench.measure import Measured, Table, Target, load_average, timed
from workers.ports import Record
from workers.roles.command.newfilter import rebuild_filter
from workers.roles.command.requests import CommandRequest
from workers.roles.process.runner import RunnerConfig
from workers.roles.process.steps import command_id
from workers.runtime.compose import Runtime
from workers.runtime.processes import PM_ROLE

BATCH = 500
"""Events per batch: what the pm agent takes at once (EVENTFLEET_BATCH_SIZE's default)."""
ITEMS = {"items": [{"sku": "tea", "qty": 1, "price": 2}]}
RAW = "bench_pm_raw"
"""The collections the raw-writes baseline writes its documents to (one per round)."""


def shipper() -> ProcessManager:
    """Each placed order asks for its shipment: one command per event, an instance per order."""

    def react(state: State | None, event: Event) -> Reaction:
        ship = Send(
            "shipment", event.aggregate_id, "ShipmentRequested", {"order_id": event.aggregate_id}
        )
        return Reaction({"asked": True}, send=[ship], done=True)

    return ProcessManager(
        name="bench_shipper",
        starts_on={"order": ["OrderPlaced"]},
        key=lambda event: event.aggregate_id,
        react=react,
        sends={"shipment": ["ShipmentRequested"]},
        roles=("fulfilment",),
    )


async def bench_pm(
    runtime: Runtime, *, events: int, rounds: int = 3, store_pid: int | None = None
) -> Table:
    """``events`` stored events per side and round; CPU of this process (and the store's, when
    the bench started it: the process manager makes it work, the bare consumer does not)."""
    manager = shipper()
    unlimited = f"{manager.principal}=0"  # both sides write as it: a budget would pace both
    pm = await Runtime.start(
        runtime.settings.model_copy(
            update={"process_poll_ms": 60_000, "write_budget_principals": unlimited}
        ),
        roles=(PM_ROLE,),
        domains=runtime.domains,
        processes=Processes([manager]),
    )
    await rebuild_filter(pm.marker, pm.events, pm.domains)  # as a commands process keeps it
    counted = "this process + the store" if store_pid else "this process (the store is not ours)"
    table = Table(
        f"process manager: {events} stored events per side, one command each through the "
        f"command door, in batches of {BATCH}; CPU of {counted}; {rounds} interleaved rounds; "
        f"{load_average()}"
    )
    names = {
        "pm": "process manager (instance + outbox)",
        "bare": "bare consumer, same sends",
        "writes": "bare consumer + the same 2 raw writes",
    }
    results: dict[str, list[Measured]] = {side: [] for side in names}
    settings = runtime.settings
    raw = MongoStores(
        settings.mongo_url, settings.mongo_database, timeout_ms=settings.mongo_timeout_ms
    )
    try:
        runner, door = pm.runner, pm.commands.handle
        concurrency = RunnerConfig().concurrency
        for r in range(rounds + 1):  # round 0 warms every side up, and is not counted
            sides = {
                "pm": _ours(runner.handle, stored(f"pm{r}", events)),
                "bare": _bare(door, manager, stored(f"bare{r}", events), concurrency),
                "writes": _bare(
                    door, manager, stored(f"raw{r}", events), concurrency, raw.db[f"{RAW}{r}"]
                ),
            }
            order = ("pm", "bare", "writes")
            for name in order if r % 2 == 0 else order[::-1]:
                measured = await timed(names[name], events, sides[name], store_pid=store_pid)
                if r:
                    results[name].append(measured)
    finally:
        await pm.stop()
        await raw.close()
    ours = results["pm"]
    exactly_once = "reference: the price of exactly-once (2 writes/event)"
    table.add(ours, results["bare"], Target(note=exactly_once))
    table.add(ours, results["writes"], Target(rate_at_least=0.8, cpu_at_most=1.3))
    return table


def stored(run: str, count: int) -> list[tuple[Event, Record]]:
    """``count`` OrderPlaced events as events.stored carries them, each of its own order."""
    tag = uuid.uuid4().hex[:6]
    pairs = []
    for i in range(count):
        event = new_event("order", f"{run}-{tag}-{i}", "OrderPlaced", ITEMS, version=1)
        record = Record("bench.events.stored", i % 8, i, event.key, b"", ())
        pairs.append((event, record))
    return pairs


def _ours(
    handle: Callable[[Sequence[tuple[Event, Record]]], Awaitable[None]],
    pairs: list[tuple[Event, Record]],
) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        for i in range(0, len(pairs), BATCH):
            await handle(pairs[i : i + BATCH])

    return run


def _bare(
    door: Callable[[CommandRequest], Awaitable[object]],
    manager: ProcessManager,
    pairs: list[tuple[Event, Record]],
    concurrency: int,
    raw: AsyncCollection[Document] | None = None,
) -> Callable[[], Awaitable[None]]:
    """The same commands (same ids, same principal) sent as each event comes; with ``raw``, a
    batch's documents inserted (journaled) before its sends and replaced (not journaled) after,
    with the bare driver, as the process manager writes its instances."""
    slots = asyncio.Semaphore(concurrency)
    actor = manager.actor()

    async def send(event: Event) -> None:
        async with slots:
            await door(
                CommandRequest(
                    "shipment",
                    event.aggregate_id,
                    "ShipmentRequested",
                    {"order_id": event.aggregate_id},
                    command_id=command_id(manager.name, event.id, 0),
                    causation_id=event.id,
                    actor=actor,
                )
            )

    async def run() -> None:
        for i in range(0, len(pairs), BATCH):
            batch = pairs[i : i + BATCH]
            if raw is not None:
                await raw.with_options(write_concern=DURABLE).insert_many(
                    [_document(e) for e, _ in batch], ordered=False
                )
            await asyncio.gather(*(send(e) for e, _ in batch))
            if raw is not None:
                quick = raw.with_options(write_concern=WriteConcern(w=1, j=False))
                await quick.bulk_write(
                    [ReplaceOne({"_id": e.id}, {**_document(e), "outbox": []}) for e, _ in batch],
                    ordered=False,
                )

    return run


def _document(event: Event) -> Document:
    """A document of an instance's size and shape: its state, its seen version, its command."""
    command = {
        "command_id": event.id,
        "aggregate_type": "shipment",
        "aggregate_id": event.aggregate_id,
        "type": "ShipmentRequested",
        "data": {"order_id": event.aggregate_id},
        "causation_id": event.id,
    }
    return {
        "_id": event.id,
        "process": "bench_shipper",
        "key": event.aggregate_id,
        "revision": 1,
        "status": "done",
        "state": {"asked": True},
        "seen": [[event.key.decode(), 1]],
        "outbox": [command],
    }
