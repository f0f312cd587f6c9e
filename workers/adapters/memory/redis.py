"""In-memory marker and command memory: the Redis scripts' contracts.

Marks are tentative until confirmed and expire on the adapter's ``clock`` (tests move it);
claims are bounded the same way. Each call is one suspension point, as a round trip is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from snapshot_rules.declaration import ANY
from topics.envelope import NEW_AGGREGATE
from topics.errors import MarkerUnavailable
from workers.adapters.memory.common import Faults, Switchable, down_message
from workers.ports import (
    CommandMemory,
    CommandRecord,
    Head,
    Marker,
    MarkRequest,
    MarkResult,
)


@dataclass(slots=True)
class _Mark:
    event_type: str
    event_id: str
    after: str
    expires_at: float


class MemoryMarker(Switchable):
    """Marks per aggregate key, ``<type>|<id>|<after>``, tentative until ``confirm_stored``."""

    def __init__(
        self,
        *,
        ttl_s: float = 86_400,
        tentative_s: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.faults = Faults(lambda what: MarkerUnavailable(down_message("marker", what)))
        self._ttl_s = ttl_s
        self._tentative_s = tentative_s
        self._clock = clock
        self._marks: dict[str, _Mark] = {}
        self._noted: set[str] = set()
        self._ready = False

    def _get(self, key: str) -> _Mark | None:
        mark = self._marks.get(key)
        if mark is not None and mark.expires_at <= self._clock():
            del self._marks[key]
            return None
        return mark

    async def check_and_mark(self, request: MarkRequest) -> MarkResult:
        await self.faults.enter("check_and_mark", f"marking {request.aggregate_key}")
        mark = self._get(request.aggregate_key)
        previous = _value(mark)
        if mark is not None:
            if mark.event_id == request.event_id:
                return MarkResult("mine", mark.after, mark.event_type, previous)
            current, after = mark.event_type, mark.event_id
        elif request.fallback == "?":
            if not self._ready or request.aggregate_key in self._noted:
                return MarkResult("missing")
            current, after = "none", NEW_AGGREGATE  # certainly new: no store read
        elif request.fallback == NEW_AGGREGATE:
            current, after = "none", NEW_AGGREGATE
        else:
            current, _, after = request.fallback.partition("|")
        shown = None if current == "none" else current
        if current not in request.allowed and ANY not in request.allowed:
            return MarkResult("rejected", after, shown, previous)
        expires = self._clock() + self._tentative_s
        self._marks[request.aggregate_key] = _Mark(
            request.event_type, request.event_id, after, expires
        )
        return MarkResult("marked", after, shown, previous)

    async def confirm_stored(self, stored: Sequence[tuple[str, str]]) -> None:
        await self.faults.enter("confirm_stored", f"confirming {len(stored)} marks")
        for aggregate_key, event_id in stored:
            mark = self._get(aggregate_key)
            if mark is not None and mark.event_id == event_id:
                mark.expires_at = self._clock() + self._ttl_s

    async def restore(self, request: MarkRequest, marked: MarkResult) -> None:
        await self.faults.enter("restore", f"restoring {request.aggregate_key}")
        mark = self._get(request.aggregate_key)
        if mark is None or mark.event_id != request.event_id:
            return
        if not marked.previous:
            del self._marks[request.aggregate_key]
            return
        event_type, event_id, after = [*marked.previous.split("|"), "", ""][:3]
        expires = self._clock() + self._tentative_s
        self._marks[request.aggregate_key] = _Mark(event_type, event_id, after, expires)

    async def repair(self, aggregate_key: str, rejected_id: str, head: Head | None) -> None:
        await self.faults.enter("repair", f"repairing {aggregate_key}")
        mark = self._get(aggregate_key)
        if mark is None or mark.event_id != rejected_id:
            return
        if head is None:
            del self._marks[aggregate_key]
        else:
            expires = self._clock() + self._ttl_s
            self._marks[aggregate_key] = _Mark(head.type, head.event_id, "", expires)

    async def note_aggregates(self, aggregate_keys: Sequence[str]) -> None:
        await self.faults.enter("note_aggregates", f"noting {len(aggregate_keys)} aggregates")
        self._noted.update(aggregate_keys)

    async def filter_ready(self) -> bool:
        await self.faults.enter("filter_ready", "reading the filter")
        return self._ready

    async def mark_filter_ready(self) -> None:
        await self.faults.enter("mark_filter_ready", "marking the filter ready")
        self._ready = True

    def lose_filter(self) -> None:
        """What a Redis flush or an eviction does: the filter is gone, so not ready."""
        self._noted.clear()
        self._ready = False

    async def peek(self, aggregate_key: str) -> tuple[str, str] | None:
        await self.faults.enter("peek", f"reading {aggregate_key}")
        mark = self._get(aggregate_key)
        return None if mark is None else (mark.event_type, mark.event_id)

    async def ping(self) -> bool:
        try:
            await self.faults.enter("ping", "pinging")
        except MarkerUnavailable:
            return False
        return True


def _value(mark: _Mark | None) -> str:
    return "" if mark is None else f"{mark.event_type}|{mark.event_id}|{mark.after}"


class MemoryCommandMemory:
    """Command records per (aggregate key, command id): bounded claims, answers for the TTL.

    Its outage switches are on ``faults`` (``release`` is the port's own verb here).
    """

    def __init__(
        self,
        *,
        ttl_s: float = 86_400,
        claim_s: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.faults = Faults(lambda what: MarkerUnavailable(down_message("command memory", what)))
        self._ttl_s = ttl_s
        self._claim_s = claim_s
        self._clock = clock
        self._records: dict[tuple[str, str], tuple[CommandRecord, float]] = {}

    def _get(self, key: tuple[str, str]) -> CommandRecord | None:
        found = self._records.get(key)
        if found is None or found[1] <= self._clock():
            self._records.pop(key, None)
            return None
        return found[0]

    async def claim(self, aggregate_key: str, command_id: str, event_id: str) -> CommandRecord | None:
        await self.faults.enter("claim", f"claiming {command_id}")
        key = (aggregate_key, command_id)
        found = self._get(key)
        if found is not None and found.state != "unknown":
            return found
        pending = CommandRecord("pending", event_id)
        self._records[key] = (pending, self._clock() + self._claim_s)
        return found

    async def recall(self, aggregate_key: str, command_id: str) -> CommandRecord | None:
        await self.faults.enter("recall", f"reading {command_id}")
        return self._get((aggregate_key, command_id))

    async def settle(self, aggregate_key: str, command_id: str, answer: bytes) -> None:
        await self.faults.enter("settle", f"answering {command_id}")
        record = CommandRecord("answered", answer=answer)
        self._records[(aggregate_key, command_id)] = (record, self._clock() + self._ttl_s)

    async def unknown(self, aggregate_key: str, command_id: str, event_id: str) -> None:
        await self.faults.enter("unknown", f"marking {command_id} unknown")
        key = (aggregate_key, command_id)
        found = self._get(key)
        if found is not None and (found.state, found.event_id) == ("pending", event_id):
            unknown = CommandRecord("unknown", event_id)
            self._records[key] = (unknown, self._clock() + self._ttl_s)

    async def release(self, aggregate_key: str, command_id: str, event_id: str) -> None:
        await self.faults.enter("release", f"releasing {command_id}")
        key = (aggregate_key, command_id)
        found = self._get(key)
        if found is not None and (found.state, found.event_id) == ("pending", event_id):
            del self._records[key]


def _implements(marker: MemoryMarker, memory: MemoryCommandMemory) -> tuple[Marker, CommandMemory]:
    """Never called: mypy checks here that the classes keep their ports' signatures."""
    return marker, memory
