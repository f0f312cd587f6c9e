"""Stored events handed on in the order of their partition, never past an offset not yet seen.

An agent may receive a partition's records with a hole: Faust drops records fetched across a
rebalance, and the gap closer (``workers.stream.gaps``) seeks back and delivers the hole again
*after* the records past it. Handed on as they come, an aggregate's version 1 would then reach
a downstream topic after its version 2. ``InOrder`` holds every record that lies past an offset
of its partition the agent has not received (``gap_below``, the offset ledger's ``open_below``),
unacknowledged, and hands a partition's records on only as a run in offset order: the hole's
records, once they come, go first. A hole that holds no record (the ledger moves its floor past
it) releases what waited behind it on the next ``tick``. Records held when their partition is
revoked are dropped, unacknowledged: its next owner reads them again from the commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Sequence

from topics.envelope import Event
from workers.ports import Record

Pair = tuple[Event, Record]
GapBelow = Callable[[int, int], bool]
"""``gap_below(partition, offset)``: whether an offset of the partition below ``offset`` has not
reached the agent yet (or the partition's start is not known)."""


class InOrder:
    """``take`` and ``tick`` return the records handed on (decided); the rest wait, held."""

    def __init__(self, hand_on: Callable[[list[Pair]], Awaitable[object]], gap_below: GapBelow):
        self._hand_on = hand_on
        self._gap_below = gap_below
        self._held: dict[int, dict[int, Pair]] = {}
        self._next: dict[int, int] = {}  # per partition: past the last offset handed on
        self._lock = asyncio.Lock()

    async def take(self, pairs: Sequence[Pair]) -> list[Record]:
        """Hold ``pairs`` with those already waiting; hand on every run that may go now."""
        async with self._lock:
            done: list[Record] = []
            for event, record in pairs:
                if record.offset < self._next.get(record.partition, -1):
                    done.append(record)  # handed on already (a retry of a call that failed)
                else:
                    self._held.setdefault(record.partition, {})[record.offset] = (event, record)
            return done + await self._hand_on_ready()

    async def tick(self) -> list[Record]:
        """Hand on what a closed hole released since (called on a timer while ``holds_work``)."""
        async with self._lock:
            return await self._hand_on_ready()

    def holds_work(self) -> bool:
        return any(self._held.values())

    def held(self) -> int:
        return sum(len(records) for records in self._held.values())

    def partitions(self) -> set[int]:
        """The partitions it holds records of, or has handed records on from."""
        return set(self._held) | set(self._next)

    def forget(self, partitions: Collection[int] | None = None) -> None:
        """Partitions no longer this process's (None: all): their held records are dropped."""
        for partition in list(self._held if partitions is None else partitions):
            self._held.pop(partition, None)
            self._next.pop(partition, None)

    async def _hand_on_ready(self) -> list[Record]:
        ready: list[Pair] = []
        for partition, held in self._held.items():
            for offset in sorted(held):
                if self._gap_below(partition, offset):
                    break  # this record, and every later one of the partition, waits
                ready.append(held[offset])
        if not ready:
            return []
        await self._hand_on(ready)  # raises: everything stays held, for the retry
        for _, record in ready:
            waiting = self._held.get(record.partition)
            if waiting is not None:  # not revoked meanwhile
                waiting.pop(record.offset, None)
                self._next[record.partition] = record.offset + 1
        return [record for _, record in ready]
