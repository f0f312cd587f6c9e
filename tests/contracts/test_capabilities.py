"""Each backend offers exactly the capabilities it claims, and the fleet's view of its events
(``TieredEvents``) keeps to ``CAPABILITIES``: what a store offers works through it, and what it
lacks takes the documented fallback, changing nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from snapshot_rules.domain import Domains
from topics.envelope import new_event, utc_now
from topics.errors import ConfigError, TransactionsUnsupported
from workers.adapters.memory import MemoryEventStore, MemorySnapshotStore
from workers.examples.domains.account import ACCOUNT
from workers.examples.domains.order import ORDER
from workers.ports import CAPABILITIES, CapabilityMissing, EventQuery, offered
from workers.roles.ops.archive import Archiver, TieredEvents
from workers.runtime.adapters import MemoryAdapters, memory_adapters
from workers.runtime.compose import Runtime
from workers.runtime.settings import Settings

from .backends import BACKENDS, Backend, CoreOnlyEvents, history


async def test_a_backend_offers_exactly_what_it_claims(backend: Backend) -> None:
    assert offered(backend.events) == backend.claims
    assert backend.claims <= {c.name for c in CAPABILITIES}


def test_every_backend_claims_known_capabilities_and_one_claims_none() -> None:
    names = {c.name for c in CAPABILITIES}
    assert all(claims <= names for _, claims in BACKENDS.values())
    assert any(not claims for _, claims in BACKENDS.values())  # the core alone is proved


async def test_what_a_store_lacks_takes_its_fallback_and_changes_nothing(backend: Backend) -> None:
    tiered = TieredEvents(backend.events)  # no archive
    assert tiered.capabilities == backend.claims
    written = history("c1", 3)
    await tiered.append(written, pending_publish=True)
    ref = ("order", "c1")
    assert await tiered.select(ref) == written  # the core always answers, archive or none
    assert await tiered.select(ref, desc=True, limit=1) == written[-1:]
    assert (await tiered.heads([ref]))[ref].version == 3
    together = [*history("c2", 1), *history("c3", 1)]
    if "transactions" in backend.claims:
        await tiered.append_atomically(together)
    else:
        with pytest.raises(TransactionsUnsupported, match="nothing was written"):
            await tiered.append_atomically(together)
        assert await tiered.find([e.id for e in together]) == {}
    if "scans" in backend.claims:
        assert await tiered.count(["order"]) == 3 + 2 * ("transactions" in backend.claims)
        assert (await tiered.versions(["order"]))[ref] == 3
        assert [e async for e in tiered.scan(["order"])][:3] == written
    else:
        for call in (tiered.count(["order"]), tiered.versions(["order"])):
            with pytest.raises(CapabilityMissing, match="scans \\(EventScans\\)") as caught:
                await call
            assert isinstance(caught.value, ConfigError) and not caught.value.retriable
        with pytest.raises(CapabilityMissing, match="nothing was done"):
            await anext(tiered.scan(["order"]))
    if "search" in backend.claims:
        assert len(await tiered.search(EventQuery(id_prefix="c1"), limit=10)) == 3
    else:
        with pytest.raises(CapabilityMissing, match="the event search needs"):
            await tiered.search(EventQuery(id_prefix="c1"), limit=10)
    later = utc_now() + timedelta(days=1)
    flagged = await tiered.pending(older_than=later, limit=10)
    assert flagged == (written if "pending" in backend.claims else [])
    await tiered.clear_pending([e.id for e in written])  # without flags: nothing to clear
    assert await tiered.pending(older_than=later, limit=10) == []
    assert await tiered.select(ref) == written  # clearing keeps the events


async def test_the_archiver_refuses_before_reading_where_nothing_can_move(
    backend: Backend,
) -> None:
    tiered = TieredEvents(backend.events)  # no archive store: nothing can move, on any backend
    await tiered.append(history("a1", 5))
    archiver = Archiver(tiered, MemorySnapshotStore(), Domains([ACCOUNT]))
    with pytest.raises(CapabilityMissing, match="the archiver needs the event store's archive"):
        await archiver.run()
    assert len(await tiered.select(("order", "a1"))) == 5


TEA = {"sku": "tea", "qty": 2, "price": 3.5}
PLACED = {"status": "placed", "items": [TEA], "total": 7.0}


def core_only_adapters() -> MemoryAdapters:
    """Every dependency in memory, the event store offering its core alone, no archive and no
    ladder: a fleet on the smallest backend there can be."""
    memory = memory_adapters()
    memory.stores.events = CoreOnlyEvents(MemoryEventStore())  # type: ignore[assignment]
    memory.stores.archive = None  # type: ignore[assignment]
    memory.stores.ladder = None  # type: ignore[assignment]
    return memory


async def test_a_fleet_runs_its_async_domains_on_the_core_alone() -> None:
    memory = core_only_adapters()
    runtime = await Runtime.start(
        Settings(topic_prefix="c.", kafka_timeout_ms=100), roles=("commands",),
        domains=Domains([ORDER]), adapters=memory.adapters(),
    )  # fmt: skip
    try:
        assert runtime.events.capabilities == frozenset() and runtime.events.archive is None
        written = [
            new_event("order", "o1", "OrderPlaced", {"items": [TEA]}, version=1),
            new_event("order", "o1", "OrderPaid", {"amount": 7.0}, version=2),
        ]
        await runtime.events.append(written)
        assert await runtime.events.select(("order", "o1")) == written
        folded = await runtime.loader.latest(ORDER, "o1")  # snapshots, and no ladder
        assert (folded.version, folded.state) == (2, {**PLACED, "status": "paid", "paid": 7.0})
        with pytest.raises(CapabilityMissing, match="scans"):
            await runtime.events.count(["order"])
    finally:
        await runtime.stop()


async def test_sync_domains_refuse_to_start_on_a_store_without_publish_flags() -> None:
    memory = core_only_adapters()
    with pytest.raises(CapabilityMissing) as caught:
        await Runtime.start(
            Settings(topic_prefix="c.", kafka_timeout_ms=100), roles=("commands",),
            domains=Domains([ORDER, ACCOUNT]), adapters=memory.adapters(),
        )  # fmt: skip
    message = str(caught.value)
    assert "the commands role, for the sync and storage domains ['account']" in message
    assert "pending (PendingEvents)" in message and "nothing was done" in message
    assert await memory.stores.events.select(("account", "a1")) == []
