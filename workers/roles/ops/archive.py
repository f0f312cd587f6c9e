"""History within bounds: events past a domain's retention move from the hot collection to the
archive, and every read spans both as if nothing moved.

The archive holds a prefix of each aggregate's history, and never its newest event: so the hot
collection alone answers heads, marks and appends, and a read consults the archive only when
the hot part it found starts after where the reader asked to begin (or it found nothing under a
``before``/``as_of``/``types`` filter), or, reading newest first, when the hot part ran out before
the limit. A move copies a bounded batch into the archive (idempotent by
event id), then deletes it from the hot collection: a reader between the two reads the hot
copy; after, the archive's. The archive part of a read is bounded by the first hot version, so
no event is read twice and none is missed.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from snapshot_rules.domain import Domain, Domains
from topics.envelope import Event, store_position, utc_now
from topics.errors import TransactionsUnsupported
from workers.ports import (
    AggregateRef,
    ArchivableEvents,
    AtomicAppends,
    CapabilityMissing,
    EventQuery,
    EventScans,
    EventSearch,
    EventStore,
    Head,
    PendingEvents,
    SearchPosition,
    SnapshotStore,
    offered,
)


class ArchiveEvents(EventStore, EventScans, ArchivableEvents, EventSearch, Protocol):
    """The archive: events move into it, and the console's search reads it too."""


class TieredEvents:
    """The fleet's one view of its events: the hot store's core and the capabilities it offers
    (discovered, ``workers.ports.capabilities``), with the archive, if there is one, read as the
    older part of every history.

    Where the hot store lacks a capability, its calls take the fallback ``CAPABILITIES`` names:
    ``CapabilityMissing`` (or ``TransactionsUnsupported`` for appends across aggregates), or
    nothing to do (no publish flags are kept, so none is pending). Without an ``archive`` every
    read is the hot store's alone and nothing can be moved.
    """

    def __init__(
        self,
        hot: EventStore,
        archive: ArchiveEvents | None = None,
        *,
        recheck_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.hot = hot
        self.archive = archive
        self.capabilities = offered(hot)
        """The names of the optional capabilities the hot store offers."""
        # Discovered once: an isinstance on a runtime-checkable Protocol is no attribute read.
        self._scanned = hot if isinstance(hot, EventScans) else None
        self._searched = hot if isinstance(hot, EventSearch) else None
        self._flagged = hot if isinstance(hot, PendingEvents) else None
        self._atomic = hot if isinstance(hot, AtomicAppends) else None
        self._recheck_s = recheck_s
        self._clock = clock
        # Per type, until when none of it is known to be archived (asked again after recheck_s).
        self._unarchived_until: dict[str, float] = {}

    def _scans(self, wanted_by: str) -> EventScans:
        if self._scanned is None:
            raise CapabilityMissing("scans", wanted_by)
        return self._scanned

    def moves(self, wanted_by: str) -> tuple[ArchivableEvents, ArchiveEvents]:
        """The hot store events move out of and the archive they move into; CapabilityMissing
        when either is missing."""
        if not isinstance(self.hot, ArchivableEvents) or self.archive is None:
            raise CapabilityMissing("archive", wanted_by)
        return self.hot, self.archive

    async def _archive_in_use(self, types: Sequence[str]) -> bool:
        """Whether the archive holds any event of ``types``; one count for the types not known
        to have none, and a no is remembered per type for ``recheck_s``."""
        if self.archive is None:
            return False
        now = self._clock()
        unknown = [t for t in types if now >= self._unarchived_until.get(t, 0.0)]
        if not unknown:
            return False
        if await self.archive.count(unknown) > 0:
            return True
        for t in unknown:
            self._unarchived_until[t] = now + self._recheck_s
        return False

    async def search(
        self, query: EventQuery, *, limit: int, before: SearchPosition | None = None
    ) -> list[Event]:
        """Both tiers, merged newest first (an event is in exactly one of them)."""
        if self._searched is None:
            raise CapabilityMissing("search", "the event search")
        found = await self._searched.search(query, limit=limit, before=before)
        if self.archive is not None:
            found += await self.archive.search(query, limit=limit, before=before)
        found.sort(key=lambda e: (e.occurred_at, e.id), reverse=True)
        return found[:limit]

    def archived(self) -> None:
        """A move happened in this process: the archive is in use from now on."""
        self._unarchived_until.clear()

    async def whole_in_hot(self, aggregate_type: str) -> bool:
        """No event of ``aggregate_type`` is archived: the hot collection holds each of its
        aggregates whole, from version 1 (an answer of yes is asked again after ``recheck_s``)."""
        return not await self._archive_in_use([aggregate_type])

    async def append(self, events: Sequence[Event], *, pending_publish: bool = False) -> None:
        await self.hot.append(events, pending_publish=pending_publish)

    async def append_atomically(
        self, events: Sequence[Event], *, pending_publish: bool = False
    ) -> None:
        """The hot store's; TransactionsUnsupported (nothing stored) where it has none."""
        if self._atomic is None:
            raise TransactionsUnsupported(
                "this event store offers no appends across aggregates (AtomicAppends); "
                "nothing was written. Append to one aggregate at a time."
            )
        await self._atomic.append_atomically(events, pending_publish=pending_publish)

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
        """The hot part first; the archive only for what may lie below the first hot version
        (and never above it: no event is read twice)."""
        hot = await self.hot.select(
            aggregate, after=after, before=before, desc=desc, limit=limit, types=types, as_of=as_of
        )
        start = (after or 0) + 1
        filtered = before is not None or as_of is not None or types is not None
        if not hot and not filtered:
            return hot  # the newest event is always hot: nothing after ``after`` anywhere
        if desc and limit is not None and len(hot) == limit:
            return hot
        if not desc and hot and (hot[0].version or 0) == start:
            return hot
        if self.archive is None:
            return hot  # nothing was ever moved: the hot store holds every history whole
        # The lowest hot version found (what a filter dropped below it is not in the archive
        # either, but for copies a move has not yet deleted: those the filter drops there too).
        lowest = (hot[-1 if desc else 0].version or 0) if hot else None
        first_hot = lowest if lowest is not None else await self.first_hot(aggregate)
        if first_hot is not None and first_hot <= start:
            return hot
        below = first_hot if before is None else min(before, first_hot or before)
        # newest first, the archive's part comes after the hot one: only what is left of limit
        left = limit if limit is None or not desc else limit - len(hot)
        older = await self.archive.select(
            aggregate, after=after, before=below, desc=desc, limit=left, types=types, as_of=as_of
        )
        return hot + older if desc else (older + hot)[:limit]

    async def first_hot(self, aggregate: AggregateRef) -> int | None:
        """The aggregate's lowest version in the hot collection (None: no events). The hot part
        is whole from it to the newest (moves take prefixes), so a hole can only lie below it."""
        first = await self.hot.select(aggregate, limit=1)
        return first[0].version if first else None

    async def heads(self, aggregates: Sequence[AggregateRef]) -> dict[AggregateRef, Head]:
        return await self.hot.heads(aggregates)

    async def find(
        self, ids: Sequence[str], *, aggregates: Sequence[AggregateRef] = ()
    ) -> dict[str, Event]:
        found = await self.hot.find(ids, aggregates=aggregates)
        missing = [i for i in ids if i not in found]
        types = sorted({t for t, _ in aggregates}) or None
        if (
            missing
            and self.archive is not None
            and (types is None or await self._archive_in_use(types))
        ):
            found.update(await self.archive.find(missing, aggregates=aggregates))
        return found

    async def scan(self, aggregate_types: Sequence[str]) -> AsyncIterator[Event]:
        """By aggregate then version: the archive's prefix first, then the hot events, merged."""
        hot = self._scans("a scan of every event").scan(aggregate_types)
        if self.archive is None:
            async for only in hot:
                yield only
            return
        seen: set[str] = set()
        archived = self.archive.scan(aggregate_types)
        a = await anext(archived, None)
        h = await anext(hot, None)
        while a is not None or h is not None:
            take_archive = h is None or (a is not None and store_position(a) <= store_position(h))
            event = a if take_archive else h
            assert event is not None
            if take_archive:
                a = await anext(archived, None)
            else:
                h = await anext(hot, None)
            if event.id not in seen:  # one in both during a move: once
                seen.add(event.id)
                yield event
            if len(seen) > 100_000:
                seen.clear()  # both scans are ordered: a double is adjacent, this bounds memory

    async def count(self, aggregate_types: Sequence[str]) -> int:
        hot = await self._scans("a count of events").count(aggregate_types)
        if self.archive is None or not await self._archive_in_use(aggregate_types):
            return hot
        return hot + await self.archive.count(aggregate_types)

    async def versions(self, aggregate_types: Sequence[str]) -> dict[AggregateRef, int]:
        return await self._scans("a list of every aggregate").versions(aggregate_types)

    async def pending(self, *, older_than: datetime, limit: int) -> list[Event]:
        """The hot store's flagged events; none where it keeps no flags."""
        if self._flagged is None:
            return []
        return await self._flagged.pending(older_than=older_than, limit=limit)

    async def pending_before(self, aggregate: AggregateRef, version: int) -> list[Event]:
        if self._flagged is None:
            return []
        return await self._flagged.pending_before(aggregate, version)

    async def clear_pending(self, ids: Sequence[str]) -> None:
        if self._flagged is not None:
            await self._flagged.clear_pending(ids)


@dataclass(frozen=True, slots=True)
class Move:
    """Events ``from_version..through_version`` of one aggregate, due for the archive."""

    aggregate: AggregateRef
    from_version: int
    through_version: int

    @property
    def events(self) -> int:
        return self.through_version - self.from_version + 1


class Archiver:
    """Moves what each domain's retention lets go, in bounded batches, beside live traffic."""

    def __init__(
        self,
        events: TieredEvents,
        snapshots: SnapshotStore,
        domains: Domains,
        *,
        batch: int = 500,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        if batch < 1:
            raise ValueError(f"an archive batch moves at least one event, not {batch}")
        self._events = events
        self._snapshots = snapshots
        self._domains = domains
        self._batch = batch
        self._now = now

    async def plan(self, types: Sequence[str] | None = None) -> list[Move]:
        """What would move now (``eventfleet archive --dry-run``): read-only, in batches."""
        return [move async for move in self._due(types, read_only=True)]

    async def run(self, types: Sequence[str] | None = None) -> list[Move]:
        """Move everything due, ``batch`` events at a time; what moved. CapabilityMissing,
        before anything is read, when the store cannot move events."""
        self._events.moves("the archiver")
        return [move async for move in self._due(types, read_only=False)]

    async def _due(self, types: Sequence[str] | None, *, read_only: bool) -> AsyncIterator[Move]:
        for domain in self._domains:
            if domain.retention is None or (types and domain.name not in types):
                continue
            heads = await self._events.versions([domain.name])
            snapshots = await self._snapshots.load_many(sorted(heads))
            for ref, head in sorted(heads.items()):
                snapshot = snapshots.get(ref)
                if snapshot is None:
                    continue
                moved = await self._walk(domain, ref, head, snapshot.version, read_only=read_only)
                if moved is not None:
                    yield moved

    async def _walk(
        self, domain: Domain, ref: AggregateRef, head: int, snapshot: int, *, read_only: bool
    ) -> Move | None:
        """Walk the aggregate's due prefix one batch at a time (moving it unless read-only)."""
        retention = domain.retention
        assert retention is not None
        horizon = min(snapshot, head - 1)  # covered by the snapshot, never the newest
        if retention.keep_last is not None:
            horizon = min(horizon, head - retention.keep_last)
        cutoff = None
        if retention.keep_s is not None:
            cutoff = self._now() - timedelta(seconds=retention.keep_s)
        first = last = None
        cursor = 0
        while True:
            batch = await self._events.hot.select(
                ref, after=cursor, before=horizon + 1, limit=self._batch
            )
            # the prefix old enough: times rise with versions, so the first young one ends it
            young = (
                i for i, e in enumerate(batch) if cutoff is not None and e.occurred_at > cutoff
            )
            due = batch[: next(young, len(batch))]
            if not due:
                break
            first = first if first is not None else due[0].version or 0
            last = due[-1].version or 0
            if not read_only:
                hot, archive = self._events.moves("the archiver")
                await archive.insert_missing(due)
                self._events.archived()
                await hot.remove_through(ref, last)
            if len(due) < len(batch) or len(batch) < self._batch:
                break
            cursor = last
        return None if first is None or last is None else Move(ref, first, last)
