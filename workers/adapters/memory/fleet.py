"""A fleet process's dependencies in memory: the stores, the marks and the stream, for tests."""

from __future__ import annotations

from collections.abc import Mapping

from workers.adapters.memory.actions import MemoryActionLog
from workers.adapters.memory.events import MemoryEventStore
from workers.adapters.memory.producer import MemoryProducer
from workers.adapters.memory.redis import MemoryCommandMemory, MemoryMarker
from workers.adapters.memory.rejections import MemoryRejections
from workers.adapters.memory.snapshots import MemorySnapshotStore
from workers.adapters.memory.views import MemoryDatabase, MemoryViewStaging, MemoryViewStore
from workers.ports import Record


class MemoryStores:
    """The event, snapshot, rejection, view and operator-action stores of one memory database."""

    def __init__(self) -> None:
        self.events = MemoryEventStore()
        self.snapshots = MemorySnapshotStore()
        self.rejections = MemoryRejections()
        self.actions = MemoryActionLog()
        self.db = MemoryDatabase()

    def views(self, collection: str) -> MemoryViewStore:
        return MemoryViewStore(self.db, collection)

    def staging(self, collection: str) -> MemoryViewStaging:
        return MemoryViewStaging(self.db, collection)

    async def open(self) -> None:
        """Nothing to prepare."""

    async def ping(self) -> None:
        """Raises while a test holds the event store down."""
        await self.events.faults.enter("ping", "pinging")

    async def store_id(self) -> str:
        return "memory"

    async def close(self) -> None:
        """Nothing to close."""


class MemoryMarks:
    """The marker and the command memory, in memory."""

    def __init__(self) -> None:
        self.marker = MemoryMarker()
        self.memory = MemoryCommandMemory()

    async def close(self) -> None:
        """Nothing to close."""


class MemoryStream:
    """One in-memory producer every part of the process shares, and reads of what it holds."""

    def __init__(self, *, partitions: Mapping[str, int] | None = None) -> None:
        self.produced = MemoryProducer(partitions=partitions, default_partitions=1)

    def producer(self, *, client_id: str) -> MemoryProducer:
        return self.produced

    async def read(self, topic: str, *, timeout_s: float = 30.0) -> list[Record]:
        return self.produced.records(topic)
