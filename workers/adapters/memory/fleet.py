"""A fleet process's dependencies in memory: the stores, the marks and the stream, for tests."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Mapping
from datetime import datetime

from workers.adapters.memory.actions import MemoryActionLog
from workers.adapters.memory.events import MemoryEventStore
from workers.adapters.memory.keys import MemoryKeyStore
from workers.adapters.memory.ladder import MemorySnapshotLadder
from workers.adapters.memory.pages import MemoryPages
from workers.adapters.memory.parked import MemoryParkedEvents
from workers.adapters.memory.positions import MemoryPositions
from workers.adapters.memory.processes import MemoryProcessInstances
from workers.adapters.memory.producer import MemoryProducer, partition_for
from workers.adapters.memory.progress import MemoryAppendProgress
from workers.adapters.memory.redis import MemoryCommandMemory, MemoryMarker
from workers.adapters.memory.rejections import MemoryRejections
from workers.adapters.memory.snapshots import MemorySnapshotStore
from workers.adapters.memory.tickets import MemoryTicketStore
from workers.adapters.memory.views import MemoryDatabase, MemoryViewStaging, MemoryViewStore
from workers.adapters.memory.written import MemoryWrittenLog
from workers.ports import Delivery, Record, TopicWindow


class MemoryStores:
    """The event, snapshot, rejection, view and operator-action stores of one memory database."""

    def __init__(self) -> None:
        self.events = MemoryEventStore()
        self.archive = MemoryEventStore()
        self.ladder = MemorySnapshotLadder()
        self.snapshots = MemorySnapshotStore()
        self.rejections = MemoryRejections()
        self.actions = MemoryActionLog()
        self.parked = MemoryParkedEvents()
        self.processes = MemoryProcessInstances()
        self.keys = MemoryKeyStore()
        self.db = MemoryDatabase()
        self._position_key = secrets.token_bytes(32)

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

    async def position_key(self) -> bytes:
        """This memory database's own key (another database: another fleet)."""
        return self._position_key

    async def close(self) -> None:
        """Nothing to close."""


class MemoryMarks:
    """The marker, the command memory, the write budgets and the tickets, in memory."""

    def __init__(self) -> None:
        self.marker = MemoryMarker()
        self.memory = MemoryCommandMemory(records=self.marker.records)  # one memory, as one Redis
        self.budgets = self.marker.budgets  # one set of buckets, as one Redis
        self.tickets = MemoryTicketStore()

    async def close(self) -> None:
        """Nothing to close."""


class MemoryStream:
    """One in-memory producer every part of the process shares, reads of what it holds, and
    the appender's progress over it (a test says how far the appender has decided)."""

    def __init__(self, *, partitions: Mapping[str, int] | None = None) -> None:
        self.produced = MemoryProducer(partitions=partitions, default_partitions=1)
        self._progress: dict[str, MemoryAppendProgress] = {}
        self.positioned = MemoryPositions(self.produced)
        self.written_log = MemoryWrittenLog(self.produced)

    def producer(self, *, client_id: str) -> MemoryProducer:
        return self.produced

    def progress(self, *, topic: str, partitions: int, group_prefix: str) -> MemoryAppendProgress:
        return self.progress_of(topic)

    def positions(self, *, fetch_max_wait_ms: int = 50) -> MemoryPositions:
        return self.positioned

    def written(self) -> MemoryWrittenLog:
        return self.written_log

    async def follow(
        self, topic: str, *, after: Mapping[int, int], idle_s: float
    ) -> AsyncIterator[list[Record]]:
        """``topic`` from the offsets ``after`` names, as records are produced (``TopicTail``)."""
        positions = dict(after)
        loop = asyncio.get_running_loop()
        while True:
            await self.produced.faults.enter("follow", f"following {topic}")
            deadline = loop.time() + idle_s
            found: list[Record] = []
            while not found and loop.time() < deadline:
                found = [
                    r
                    for r in self.produced.records(topic)
                    if r.offset >= positions.get(r.partition, 0)
                ]
                if not found:
                    await asyncio.sleep(0.005)  # polling memory: a test double's pace
            found.sort(key=lambda r: (r.partition, r.offset))
            for record in found:
                positions[record.partition] = record.offset + 1
            yield found

    def pages(self, *, readers: int = 4) -> MemoryPages:
        """Bounded reads of a topic from positions (``TopicPages``)."""
        return MemoryPages(self.produced)

    def probe(self) -> MemoryLogProbe:
        return MemoryLogProbe(self.produced)

    def progress_of(self, topic: str) -> MemoryAppendProgress:
        """The appender's progress on ``topic`` (one per topic, shared by whoever asks)."""
        if topic not in self._progress:
            self._progress[topic] = MemoryAppendProgress(self.produced, topic)
        return self._progress[topic]

    async def read(self, topic: str, *, timeout_s: float = 30.0) -> list[Record]:
        return self.produced.records(topic)

    async def read_window(
        self,
        topic: str,
        *,
        limit: int,
        partition: int | None = None,
        before_offset: int | None = None,
        timeout_s: float = 10.0,
    ) -> list[TopicWindow]:
        if limit < 1:
            raise ValueError(f"read_window needs limit >= 1, got {limit}")
        if topic not in self.produced.topics():
            return []  # as on Kafka: a topic nobody wrote does not exist
        windows = []
        for p in range(self.produced.partitions(topic)):
            if partition is not None and p != partition:
                continue
            kept = self.produced.records(topic, partition=p)
            end = kept[-1].offset + 1 if kept else 0
            top = end if before_offset is None else min(before_offset, end)
            start = max(0, top - limit)
            shown = [r for r in kept if start <= r.offset < top]
            windows.append(TopicWindow(p, 0, end, start, shown))
        return windows


class MemoryLogProbe:
    """``LogProbe`` over the in-memory producer: what it holds is all there is. No delivery
    is ever pending (``bound_s`` 0); a test gives another bound to play a broker's."""

    def __init__(self, produced: MemoryProducer, *, bound_s: float | None = 0.0) -> None:
        self._produced = produced
        self._bound_s = bound_s

    def delivery_bound_s(self) -> float | None:
        return self._bound_s

    async def find(
        self, topic: str, key: bytes, event_id: str, *, since: datetime
    ) -> Delivery | None:
        await self._produced.faults.enter("find", f"reading {topic} for {event_id}")
        partition = partition_for(key, self._produced.partitions(topic))
        wanted = event_id.encode()
        for r in self._produced.records(topic, partition=partition):
            if any(k == "event_id" and v == wanted for k, v in r.headers):
                return Delivery(topic, partition, r.offset)
        return None
