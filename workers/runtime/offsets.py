"""The one place that decides which offsets a consumer may commit: never past an undecided record.

Every agent takes its records into an ``OffsetLedger`` and tells it which ones are decided
(stored, dead-lettered with a reason, or refused with the refusal recorded). ``release`` hands
back, per partition and in offset order, only the records below the lowest undecided offset;
only those are acked to Faust, so whatever commits (the periodic commit, a rebalance, the
drain, Faust's own shutdown) can never pass a record whose fate is not yet written down.

Faust's own bookkeeping would not do: it commits the first run of acked offsets even when the
offset right after the last commit is still unacked (and anything at all on a partition never
committed before), so acking out of order loses whatever was still in flight.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(slots=True)
class _Partition(Generic[T]):
    """The records of one partition not released yet, in offset order."""

    order: deque[int] = field(default_factory=deque)
    tokens: dict[int, T] = field(default_factory=dict)
    decided: set[int] = field(default_factory=set)


class OffsetLedger(Generic[T]):
    """Records taken and not yet released, per partition; ``T`` is what the caller acks with."""

    def __init__(self) -> None:
        self._partitions: dict[int, _Partition[T]] = {}

    def take(self, partition: int, offset: int, token: T) -> bool:
        """Hold a record until it is decided; False when this offset is held already."""
        held = self._partitions.setdefault(partition, _Partition())
        if offset in held.tokens:
            return False
        if held.order and offset < held.order[-1]:  # a seek back: keep the order sorted
            held.order = deque(sorted((*held.order, offset)))
        else:
            held.order.append(offset)
        held.tokens[offset] = token
        return True

    def decide(self, partition: int, offset: int) -> None:
        """The record's fate is written down; an offset not held (revoked since) is ignored."""
        held = self._partitions.get(partition)
        if held is not None and offset in held.tokens:
            held.decided.add(offset)

    def release(self) -> list[T]:
        """Tokens of every partition's decided prefix, in offset order; they leave the ledger."""
        released: list[T] = []
        for partition, held in list(self._partitions.items()):
            while held.order and held.order[0] in held.decided:
                offset = held.order.popleft()
                held.decided.discard(offset)
                released.append(held.tokens.pop(offset))
            if not held.order:
                del self._partitions[partition]
        return released

    def revoke(self, partitions: Iterable[int] | None = None) -> None:
        """Forget partitions (None: all): their next owner reads them again from the commit."""
        if partitions is None:
            self._partitions.clear()
            return
        for partition in partitions:
            self._partitions.pop(partition, None)

    def committable(self) -> dict[int, int]:
        """Per held partition, the lowest offset not yet released: a commit may not pass it."""
        return {p: held.order[0] for p, held in self._partitions.items() if held.order}

    def undecided(self, partitions: Collection[int] | None = None) -> int:
        """How many held records are not decided yet."""
        return sum(
            len(held.tokens) - len(held.decided)
            for p, held in self._partitions.items()
            if partitions is None or p in partitions
        )
