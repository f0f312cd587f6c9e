"""In-memory marker and command memory: the Redis scripts' contracts.

Marks and command records expire on the adapter's ``clock`` (tests move it). Each call is one
suspension point, as a round trip is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from snapshot_rules.declaration import ANY, NEW
from topics.envelope import NEW_AGGREGATE
from topics.errors import MarkerUnavailable
from workers.adapters.memory.budgets import MemoryWriteBudgets
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
    version: int | None = None  # the marker's count (None: it knows none)


class _Records:
    """Command records by key, each with its expiry: what both memory adapters share."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.by_key: dict[tuple[str, str], tuple[CommandRecord, float]] = {}

    def get(self, key: tuple[str, str]) -> CommandRecord | None:
        found = self.by_key.get(key)
        if found is None or found[1] <= self.clock():
            self.by_key.pop(key, None)
            return None
        return found[0]

    def put(self, key: tuple[str, str], record: CommandRecord, ttl_s: float) -> None:
        self.by_key[key] = (record, self.clock() + ttl_s)

    def claim(
        self, key: tuple[str, str], event_id: str, token: str, claim_s: float
    ) -> tuple[CommandRecord | None, bool]:
        """(what blocks the claim, taken over): None when the claim is now ``token``'s."""
        found = self.get(key)
        if found is not None and found.state == "pending" and found.token == token:
            return None, False
        if found is not None and found.state != "unknown":
            return found, False
        self.put(key, CommandRecord("pending", event_id, token=token), claim_s)
        return None, found is not None


class MemoryMarker(Switchable):
    """Marks per aggregate key, ``<type>|<id>|<after>|<version>``, (shared with a
    ``MemoryCommandMemory`` through ``records``) the command claims they are taken with, and
    the write budgets a mark may draw on first."""

    def __init__(
        self,
        *,
        ttl_s: float = 86_400,
        claim_s: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
        budgets: MemoryWriteBudgets | None = None,
    ) -> None:
        self.faults = Faults(lambda what: MarkerUnavailable(down_message("marker", what)))
        self._ttl_s = ttl_s
        self._claim_s = claim_s
        self._clock = clock
        self.budgets = budgets or MemoryWriteBudgets(clock)
        """The buckets a request's ``budget`` draws on (give the fleet's ``MemoryWriteBudgets``
        so both take from one set, as they do on one Redis)."""
        self._marks: dict[str, _Mark] = {}
        self._noted: set[str] = set()
        self._ready = False
        self._run = "run-1"
        self._built_on = ""
        self.records = _Records(clock)

    def _get(self, key: str) -> _Mark | None:
        mark = self._marks.get(key)
        if mark is not None and mark.expires_at <= self._clock():
            del self._marks[key]
            return None
        return mark

    async def check_and_mark(self, request: MarkRequest) -> MarkResult:
        await self.faults.enter("check_and_mark", f"marking {request.aggregate_key}")
        if request.budget is not None:
            wait_ms = self.budgets.take_now(request.budget)
            if wait_ms:
                return MarkResult("over_budget", retry_after_ms=wait_ms)
        takeover = False
        if request.command_id is not None:
            key = (request.aggregate_key, request.command_id)
            blocking, takeover = self.records.claim(
                key, request.event_id, request.token, self._claim_s
            )
            if blocking is not None:
                status = "busy" if blocking.state == "pending" else "answered"
                return MarkResult(status, record=blocking)
        mark = self._get(request.aggregate_key)
        previous = _value(mark)
        if mark is not None and request.replace and previous == request.replace:
            mark, previous = None, ""
        known: int | None
        if mark is not None:
            if mark.event_id == request.event_id:
                return MarkResult("mine", mark.after, mark.event_type, previous, takeover=takeover)
            current, after, known = mark.event_type, mark.event_id, mark.version
        elif request.fallback == "?":
            if (
                not self._ready
                or request.aggregate_key in self._noted
                or not (NEW in request.allowed or ANY in request.allowed)
            ):  # as Redis: the filter is asked only for a type that may start an aggregate
                return MarkResult("missing", previous=previous, takeover=takeover)
            current, after, known = "none", NEW_AGGREGATE, 0  # certainly new: no store read
        elif request.fallback == NEW_AGGREGATE:
            current, after, known = "none", NEW_AGGREGATE, 0
        else:
            current, after, counted = [*request.fallback.split("|", 2), ""][:3]
            known = _count(counted)
        shown = None if current == "none" else current
        expected = request.expected_version
        if expected is not None and known is not None and known != expected:
            return MarkResult(
                "wrong_version", after, shown, previous, takeover=takeover, version=known
            )
        if current not in request.allowed and ANY not in request.allowed:
            return MarkResult("rejected", after, shown, previous, takeover=takeover, version=known)
        expires = self._clock() + self._ttl_s
        self._marks[request.aggregate_key] = _Mark(
            request.event_type,
            request.event_id,
            after,
            expires,
            None if known is None else known + 1,
        )
        return MarkResult("marked", after, shown, previous, takeover=takeover, version=known)

    async def restore(self, request: MarkRequest, marked: MarkResult) -> None:
        await self.faults.enter("restore", f"restoring {request.aggregate_key}")
        mark = self._get(request.aggregate_key)
        if mark is None or mark.event_id != request.event_id:
            return
        if not marked.previous:
            del self._marks[request.aggregate_key]
            return
        self._marks[request.aggregate_key] = _parsed(marked.previous, self._clock() + self._ttl_s)

    async def repair(self, aggregate_key: str, rejected_id: str, head: Head | None) -> None:
        await self.faults.enter("repair", f"repairing {aggregate_key}")
        mark = self._get(aggregate_key)
        if mark is None or mark.event_id != rejected_id:
            return
        if head is None:
            del self._marks[aggregate_key]
        else:
            expires = self._clock() + self._ttl_s
            self._marks[aggregate_key] = _Mark(head.type, head.event_id, "", expires, head.version)

    async def note_aggregates(self, aggregate_keys: Sequence[str]) -> None:
        await self.faults.enter("note_aggregates", f"noting {len(aggregate_keys)} aggregates")
        self._noted.update(aggregate_keys)

    async def filter_ready(self) -> bool:
        await self.faults.enter("filter_ready", "reading the filter")
        return self._ready and self._built_on == self._run

    async def mark_filter_ready(self) -> None:
        await self.faults.enter("mark_filter_ready", "marking the filter ready")
        self._ready, self._built_on = True, self._run

    async def forget_filter(self) -> None:
        await self.faults.enter("forget_filter", "forgetting the filter")
        self._ready = False

    def lose_filter(self) -> None:
        """What a Redis flush does: the filter is gone, so not ready."""
        self._noted.clear()
        self._ready = False

    def lose_everything(self) -> None:
        """What a Redis flush or a restart without persistence does: marks, claims, filter."""
        self._marks.clear()
        self.records.by_key.clear()
        self.lose_filter()

    def restart(self) -> None:
        """A server restarted from a dump: the data stays as it was, the run id is new."""
        self._run = f"run-{int(self._run.rpartition('-')[2]) + 1}"

    async def peek(self, aggregate_key: str) -> tuple[str, str] | None:
        await self.faults.enter("peek", f"reading {aggregate_key}")
        mark = self._get(aggregate_key)
        return None if mark is None else (mark.event_type, mark.event_id)

    def value(self, aggregate_key: str) -> str:
        """The mark as stored (tests read marks through it, and plant them with ``plant``)."""
        return _value(self._get(aggregate_key))

    def plant(self, aggregate_key: str, value: str) -> None:
        """Set a mark as Redis would hold ``value`` (``<type>|<id>|<after>|<version>``)."""
        self._marks[aggregate_key] = _parsed(value, self._clock() + self._ttl_s)

    async def ping(self) -> bool:
        try:
            await self.faults.enter("ping", "pinging")
        except MarkerUnavailable:
            return False
        return True


def _value(mark: _Mark | None) -> str:
    if mark is None:
        return ""
    version = "" if mark.version is None else mark.version
    return f"{mark.event_type}|{mark.event_id}|{mark.after}|{version}"


def _parsed(value: str, expires_at: float) -> _Mark:
    """A mark from its stored form; a version it does not hold (or not as digits) is unknown."""
    event_type, event_id, after, version = [*value.split("|", 3), "", "", ""][:4]
    return _Mark(event_type, event_id, after, expires_at, _count(version))


def _count(text: str) -> int | None:
    """A version as the Lua script reads it: decimal digits, else unknown."""
    return int(text) if text.isascii() and text.isdigit() else None


class MemoryCommandMemory:
    """Command records per (aggregate key, command id): bounded claims, outcomes for the TTL.

    Give it the marker's ``records`` (``MemoryCommandMemory(records=marker.records)``) so the
    marker's claims and these are one memory, as they are one Redis. Its outage switches are
    on ``faults`` (``release`` is the port's own verb here).
    """

    def __init__(
        self,
        *,
        ttl_s: float = 86_400,
        claim_s: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
        records: _Records | None = None,
    ) -> None:
        self.faults = Faults(lambda what: MarkerUnavailable(down_message("command memory", what)))
        self._ttl_s = ttl_s
        self._claim_s = claim_s
        self._records = records or _Records(clock)

    async def claim(
        self, aggregate_key: str, command_id: str, event_id: str, token: str
    ) -> CommandRecord | None:
        await self.faults.enter("claim", f"claiming {command_id}")
        key = (aggregate_key, command_id)
        before = self._records.get(key)
        blocking, taken_over = self._records.claim(key, event_id, token, self._claim_s)
        return blocking if blocking is not None else (before if taken_over else None)

    async def recall(self, aggregate_key: str, command_id: str) -> CommandRecord | None:
        await self.faults.enter("recall", f"reading {command_id}")
        return self._records.get((aggregate_key, command_id))

    async def recall_event(self, aggregate_key: str, event_id: str) -> CommandRecord | None:
        await self.faults.enter("recall_event", f"reading event {event_id}")
        key = (aggregate_key, f"evt:{event_id}")
        found = self._records.get(key)
        if found is None:
            return None
        remaining = self._records.by_key[key][1] - self._records.clock()
        return replace(found, age_s=max(0.0, self._ttl_s - remaining))

    async def resolve(
        self,
        aggregate_key: str,
        event_id: str,
        *,
        answer: bytes,
        command_answer: bytes | None,
        min_age_s: float,
    ) -> bool:
        await self.faults.enter("resolve", f"resolving event {event_id}")
        key = (aggregate_key, f"evt:{event_id}")
        found = self._records.get(key)
        if found is None or found.state != "unknown":
            return False
        if self._ttl_s - (self._records.by_key[key][1] - self._records.clock()) < min_age_s:
            return False
        if found.command_id:
            by_command = (aggregate_key, found.command_id)
            held = self._records.get(by_command)
            if held is not None and held.state == "pending":
                return False
            if held is not None and (held.state, held.event_id) == ("unknown", event_id):
                if command_answer is None:
                    del self._records.by_key[by_command]
                else:
                    answered = CommandRecord("answered", answer=command_answer)
                    self._records.put(by_command, answered, self._ttl_s)
        self._records.put(key, CommandRecord("answered", answer=answer), self._ttl_s)
        return True

    async def settle(self, aggregate_key: str, command_id: str, answer: bytes) -> None:
        await self.faults.enter("settle", f"answering {command_id}")
        record = CommandRecord("answered", answer=answer)
        self._records.put((aggregate_key, command_id), record, self._ttl_s)

    async def unknown(self, aggregate_key: str, command_id: str | None, event_id: str) -> None:
        await self.faults.enter("unknown", f"marking {command_id or event_id} unknown")
        unknown = CommandRecord("unknown", event_id)
        by_event = replace(unknown, command_id=command_id or "")
        self._records.put((aggregate_key, f"evt:{event_id}"), by_event, self._ttl_s)
        if command_id is not None:
            key = (aggregate_key, command_id)
            found = self._records.get(key)
            if found is None or found.state in ("pending", "unknown"):
                self._records.put(key, unknown, self._ttl_s)

    async def release(self, aggregate_key: str, command_id: str, token: str) -> None:
        await self.faults.enter("release", f"releasing {command_id}")
        key = (aggregate_key, command_id)
        found = self._records.get(key)
        if found is not None and (found.state, found.token) == ("pending", token):
            del self._records.by_key[key]

    async def refused(self, aggregate_key: str, command_id: str, answer: bytes) -> None:
        await self.faults.enter("refused", f"recording the refusal of {command_id}")
        record = CommandRecord("answered", answer=answer)
        self._records.put((aggregate_key, f"rej:{command_id}"), record, self._ttl_s)

    async def recall_refusal(self, aggregate_key: str, command_id: str) -> bytes | None:
        await self.faults.enter("recall_refusal", f"reading the refusal of {command_id}")
        found = self._records.get((aggregate_key, f"rej:{command_id}"))
        return None if found is None else found.answer


def _implements(marker: MemoryMarker, memory: MemoryCommandMemory) -> tuple[Marker, CommandMemory]:
    """Never called: mypy checks here that the classes keep their ports' signatures."""
    return marker, memory
