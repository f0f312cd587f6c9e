"""Each backend offers exactly the capabilities it claims, and the fleet's view of its events
(``TieredEvents``) keeps to ``CAPABILITIES``: what a store offers works through it, and what it
lacks takes the documented fallback, changing nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from snapshot_rules.domain import Domains
from topics.envelope import utc_now
from topics.errors import ConfigError, TransactionsUnsupported
from workers.adapters.memory import MemorySnapshotStore
from workers.examples.domains.account import ACCOUNT
from workers.ports import CAPABILITIES, CapabilityMissing, EventQuery, offered
from workers.roles.ops.archive import Archiver, TieredEvents

from .backends import BACKENDS, Backend
from .test_event_store import history


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
