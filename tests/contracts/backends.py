"""The event-store backends the contract suite proves, and how a new one joins them.

A backend hands the suite a ``Backend``: a fresh, empty event store of its own, which implements
the core (``workers.ports.EventStore``) and whatever capabilities it claims, and ``outage()``,
the same store unable to answer (every call but bad input raises ``StoreUnavailable``). The
suite is ``test_event_store.py`` (the core, on every backend) and one module per capability
(``test_event_scans.py``, ``test_event_search.py``, ``test_archivable_events.py``,
``test_pending_events.py``, ``test_atomic_appends.py``), each run on the backends that claim it;
``test_capabilities.py`` checks that each backend offers exactly what it claims and that the
fleet's fallbacks hold on it.

A new backend joins with one opener and one line in ``BACKENDS``::

    @asynccontextmanager
    async def open_mine(stack: EmbeddedStack, name: str) -> AsyncIterator[Backend]:
        store = MyEventStore(...)            # empty, of this test's own (``name``)
        try:
            yield Backend("mine", store, outage=...)
        finally:
            ...                              # drop what the test stored

    BACKENDS["mine"] = (open_mine, frozenset({"scans", "search"}))  # the capabilities it claims

``claims`` are the names of ``workers.ports.CAPABILITIES``. Three backends are here: the
in-memory twin and MongoDB (SecantusDB on the embedded stack) claim every capability; ``core``
(the in-memory store seen through its core alone) claims none, so the core suite and the
fallbacks are proved on a store that offers nothing more.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from tests.faults import TcpProxy
from topics.envelope import Event, new_event
from workers.adapters.memory import MemoryEventStore
from workers.adapters.mongo import Document, MongoEventStore, connect, database
from workers.devtools.embedded import EmbeddedStack
from workers.ports import (
    CAPABILITIES,
    AggregateRef,
    ArchivableEvents,
    AtomicAppends,
    EventScans,
    EventSearch,
    EventStore,
    Head,
    PendingEvents,
    ScannableEvents,
)

EVERY_CAPABILITY = frozenset(c.name for c in CAPABILITIES)
OUTAGE_TIMEOUT_MS = 300
"""How long the real adapters wait for a dropped MongoDB or a paused Kafka before giving up."""


@dataclass
class Backend:
    """One backend's event store, empty, and the same store while it cannot answer."""

    name: str
    events: EventStore
    outage: Callable[[], AbstractAsyncContextManager[EventStore]]

    @property
    def claims(self) -> frozenset[str]:
        return BACKENDS[self.name][1]

    # The store as each capability's suite uses it (a backend that claims it offers it).

    @property
    def scans(self) -> ScannableEvents:
        assert isinstance(self.events, EventScans), self.name
        return self.events

    @property
    def search(self) -> EventSearch:
        assert isinstance(self.events, EventSearch), self.name
        return self.events

    @property
    def moves(self) -> ArchivableEvents:
        assert isinstance(self.events, ArchivableEvents), self.name
        return self.events

    @property
    def pending(self) -> PendingEvents:
        assert isinstance(self.events, PendingEvents), self.name
        return self.events

    @property
    def atomic(self) -> AtomicAppends:
        assert isinstance(self.events, AtomicAppends), self.name
        return self.events


Opener = Callable[[EmbeddedStack, str], AbstractAsyncContextManager[Backend]]


@asynccontextmanager
async def open_memory(stack: EmbeddedStack, name: str) -> AsyncIterator[Backend]:
    events = MemoryEventStore()
    yield Backend("memory", events, outage=_switched_off(events, events))


@asynccontextmanager
async def open_core(stack: EmbeddedStack, name: str) -> AsyncIterator[Backend]:
    inner = MemoryEventStore()
    events = CoreOnlyEvents(inner)
    yield Backend("core", events, outage=_switched_off(inner, events))


@asynccontextmanager
async def open_mongo(stack: EmbeddedStack, name: str) -> AsyncIterator[Backend]:
    url = stack.urls.mongo_url

    @asynccontextmanager
    async def outage() -> AsyncIterator[EventStore]:
        async with unreachable_mongo(url, name) as db:
            yield MongoEventStore(db)

    client = connect(url, timeout_ms=5000)
    try:
        events = MongoEventStore(database(client, name))
        await events.ensure_indexes()
        yield Backend("mongo", events, outage=outage)
    finally:
        await client.drop_database(name)
        await client.close()


def _switched_off(
    switch: MemoryEventStore, events: EventStore
) -> Callable[[], AbstractAsyncContextManager[EventStore]]:
    @asynccontextmanager
    async def outage() -> AsyncIterator[EventStore]:
        switch.down()
        try:
            yield events
        finally:
            switch.up()

    return outage


class CoreOnlyEvents:
    """The smallest event store there can be: the core and nothing more (the in-memory store
    behind it), as a new backend starts out."""

    def __init__(self, inner: MemoryEventStore) -> None:
        self._inner = inner

    async def append(self, events: Sequence[Event], *, pending_publish: bool = False) -> None:
        await self._inner.append(events)  # no publish flags are kept

    async def select(
        self,
        aggregate: AggregateRef,
        *,
        after: int | None = None,
        before: int | None = None,
        desc: bool = False,
        limit: int | None = None,
        types: Sequence[str] | None = None,
        as_of: datetime | None = None,
    ) -> list[Event]:
        return await self._inner.select(
            aggregate, after=after, before=before, desc=desc, limit=limit, types=types, as_of=as_of
        )

    async def heads(self, aggregates: Sequence[AggregateRef]) -> dict[AggregateRef, Head]:
        return await self._inner.heads(aggregates)

    async def find(
        self, ids: Sequence[str], *, aggregates: Sequence[AggregateRef] = ()
    ) -> dict[str, Event]:
        return await self._inner.find(ids, aggregates=aggregates)


BACKENDS: dict[str, tuple[Opener, frozenset[str]]] = {
    "memory": (open_memory, EVERY_CAPABILITY),
    "mongo": (open_mongo, EVERY_CAPABILITY),
    "core": (open_core, frozenset()),
}
"""Every backend the suite proves: how to open one, and the capabilities it claims."""


def claiming(capability: str) -> list[str]:
    """The backends that claim ``capability`` (a name of ``CAPABILITIES``)."""
    assert any(c.name == capability for c in CAPABILITIES), capability
    return [name for name, (_, claims) in BACKENDS.items() if capability in claims]


@asynccontextmanager
async def opened(name: str, stack: EmbeddedStack, unique_name: str) -> AsyncIterator[Backend]:
    """Backend ``name``, empty, on a database (or whatever it keeps) of the test's own."""
    opener, _ = BACKENDS[name]
    async with opener(stack, unique_name) as backend:
        yield backend


@asynccontextmanager
async def unreachable_mongo(url: str, name: str) -> AsyncIterator[AsyncDatabase[Document]]:
    """Database ``name`` through a proxy that resets every connection, with short timeouts."""
    target = urlsplit(url)
    assert target.hostname is not None and target.port is not None
    async with TcpProxy(target.hostname, target.port) as proxy:
        client = connect(url.replace(target.netloc, proxy.address), timeout_ms=OUTAGE_TIMEOUT_MS)
        try:
            proxy.drop()
            yield database(client, name)
        finally:
            await client.close()


def _implements(events: CoreOnlyEvents) -> EventStore:
    """Never called: mypy checks here that the core-only store keeps the core's signatures."""
    return events


def backend_claiming(capability: str) -> Callable[..., AsyncIterator[Backend]]:
    """The ``backend`` fixture of a capability's suite: every backend that claims it, empty."""

    @pytest.fixture(params=claiming(capability))
    async def backend(
        request: pytest.FixtureRequest, stack: EmbeddedStack, unique_name: str
    ) -> AsyncIterator[Backend]:
        async with opened(request.param, stack, unique_name) as claimed:
            yield claimed

    return backend


def history(aggregate_id: str, n: int, *, start: int = 1, type: str = "order") -> list[Event]:
    """``n`` events of one aggregate numbered from ``start``, as the suites append them."""
    return [
        new_event(type, aggregate_id, "OrderPaid", {"n": v}, version=v)
        for v in range(start, start + n)
    ]
