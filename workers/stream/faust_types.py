"""The parts of Faust's signals the runtime reads, typed by what it uses of them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol


class Partition(Protocol):
    """A topic partition as Faust names it (``faust.types.TP``)."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...


Partitions = Iterable[Partition] | None
"""What a rebalance signal carries: the partitions assigned or revoked (None: none)."""
