"""The one place that decides which offsets a consumer may commit: never past a record whose fate
is not written down, and never past an offset the agent never saw.

Every agent takes its records into an ``OffsetLedger`` and tells it which ones are decided
(stored, dead-lettered with a reason, or refused with the refusal recorded). ``release`` hands
back, per partition and in offset order, only a *contiguous* run of decided records starting at
the partition's floor: the group's committed offset once ``start`` has named it, then the offset
after the last record released. Only those are acked to Faust, so whatever commits (the periodic
commit, a rebalance, the drain, Faust's own shutdown) can never pass a record still in flight,
nor one that never reached the agent.

Records do go missing between the broker and an agent: Faust clears its stream queues when it
resumes flow at the end of a rebalance's recovery, dropping records fetched since the seek to the
committed offsets while the fetch position has already moved past them. A hole at the head of a
partition (the floor not yet known, or the lowest record held above it) is a ``Gap``; the agent
closes it (``workers.stream.gaps``): it reads the committed offset, asks Kafka which offsets
of the hole hold records, and either seeks back to redeliver them or, when none do (transaction
markers, compaction), moves the floor past the hole.

Faust's own bookkeeping would not do: it commits the first run of acked offsets even when the
offset right after the last commit is still unacked (and anything at all on a partition never
committed before), and it counts offsets it skipped while reading as acked.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Gap:
    """Offsets of one partition the agent has not seen: from ``floor`` (None: the group's
    committed offset, not read yet) up to ``first``, the lowest offset it holds."""

    partition: int
    floor: int | None
    first: int


Taken = Literal["new", "copy", "done"]
"""What ``take`` found: a record to handle; another delivery of a record held (handled once,
acked with it); or a record released before or below the group's commit (ack it at once)."""


@dataclass(slots=True)
class _Partition(Generic[T]):
    """The records of one partition not released yet, in offset order, and where releasing
    resumes (None until the group's committed offset is known)."""

    order: deque[int] = field(default_factory=deque)
    tokens: dict[int, list[T]] = field(default_factory=dict)
    decided: set[int] = field(default_factory=set)
    floor: int | None = None


class OffsetLedger(Generic[T]):
    """Records taken and not yet released, per partition; ``T`` is what the caller acks with.

    Every delivery's token is acked exactly once: Faust counts a record done only when each
    agent reading its topic acked its own delivery, so a delivery never acked would hold the
    group's commits back for good.
    """

    def __init__(self) -> None:
        self._partitions: dict[int, _Partition[T]] = {}
        self._forgotten: list[T] = []  # below a new floor: acked with the next release

    def take(self, partition: int, offset: int, token: T) -> Taken:
        """Hold a delivered record until it is decided (``Taken`` says what to do with it)."""
        held = self._partitions.get(partition)
        if held is None:  # not setdefault: a partition built for every record costs a batch
            held = self._partitions[partition] = _Partition()
        if held.floor is not None and offset < held.floor:
            return "done"
        if offset in held.tokens:
            held.tokens[offset].append(token)
            return "copy"
        if held.order and offset < held.order[-1]:  # a seek back: keep the order sorted
            held.order = deque(sorted((*held.order, offset)))
        else:
            held.order.append(offset)
        held.tokens[offset] = [token]
        return "new"

    def decide(self, partition: int, offset: int) -> None:
        """The record's fate is written down; an offset not held (revoked since) is ignored."""
        held = self._partitions.get(partition)
        if held is not None and offset in held.tokens:
            held.decided.add(offset)

    def expect(self, partitions: Iterable[int]) -> None:
        """These partitions are assigned: their start is to be read (``unknown``) even before a
        record of theirs arrives, since every record fetched may be lost on the way."""
        for partition in partitions:
            self._partitions.setdefault(partition, _Partition())

    def unknown(self) -> list[int]:
        """Partitions whose start (the group's committed offset) is not known yet."""
        return sorted(p for p, held in self._partitions.items() if held.floor is None)

    def expected(self, partition: int) -> int | None:
        """The next offset the agent should receive on ``partition`` (None: start unknown)."""
        held = self._partitions.get(partition)
        if held is None or held.floor is None:
            return None
        return max(held.floor, held.order[-1] + 1) if held.order else held.floor

    def open_below(self, partition: int, offset: int) -> bool:
        """Whether an offset of ``partition`` below ``offset`` has not reached the agent yet (or
        the partition's start is unknown): a record there may be the one ``offset`` follows."""
        held = self._partitions.get(partition)
        if held is None:
            return False  # not this agent's partition (revoked)
        if held.floor is None:
            return True
        if offset <= held.floor:
            return False
        return bisect_left(held.order, offset) < offset - held.floor  # held.order is sorted

    def start(self, partition: int, floor: int) -> None:
        """Releasing on ``partition`` resumes at ``floor``: the group's committed offset, or the
        first offset past a hole that holds no record. Records held below it are forgotten
        (the group is past them); a floor never moves back."""
        held = self._partitions.setdefault(partition, _Partition())
        if held.floor is not None and floor <= held.floor:
            return
        held.floor = floor
        while held.order and held.order[0] < floor:
            offset = held.order.popleft()
            self._forgotten += held.tokens.pop(offset)
            held.decided.discard(offset)

    def release(self) -> list[T]:
        """Tokens of every partition's decided run from its floor, in offset order (and those
        ``start`` put below a floor); they leave the ledger. Nothing is released on a partition
        whose floor is unknown or lies below the lowest record held (a ``Gap``)."""
        released, self._forgotten = self._forgotten, []
        for held in self._partitions.values():
            while held.order and held.order[0] == held.floor and held.floor in held.decided:
                offset = held.order.popleft()
                held.decided.discard(offset)
                released += held.tokens.pop(offset)
                held.floor = offset + 1
        return released

    def gaps(self) -> list[Gap]:
        """Partitions holding records that cannot be released before the agent learns more."""
        return [
            Gap(partition, held.floor, held.order[0])
            for partition, held in sorted(self._partitions.items())
            if held.order and (held.floor is None or held.order[0] > held.floor)
        ]

    def revoke(self, partitions: Iterable[int] | None = None) -> None:
        """Forget partitions (None: all): their next owner reads them again from the commit."""
        if partitions is None:
            self._partitions.clear()
            return
        for partition in partitions:
            self._partitions.pop(partition, None)

    def partitions(self) -> set[int]:
        """The partitions this ledger knows (held records, or a floor)."""
        return set(self._partitions)

    def committable(self) -> dict[int, int]:
        """Per partition holding records, the lowest offset not yet released: no commit may
        pass it."""
        return {
            p: held.order[0] if held.floor is None else min(held.floor, held.order[0])
            for p, held in self._partitions.items()
            if held.order
        }

    def undecided(self, partitions: Collection[int] | None = None) -> int:
        """How many held records are not decided yet."""
        return sum(
            len(held.order) - len(held.decided)
            for p, held in self._partitions.items()
            if partitions is None or p in partitions
        )
