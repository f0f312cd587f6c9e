"""The parts of Faust's signals the runtime reads, typed by what it uses of them, and how it
connects to the rebalance signals (``on_rebalance``)."""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from typing import Protocol

from faust.types import AppT


class Partition(Protocol):
    """A topic partition as Faust names it (``faust.types.TP``)."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...


Partitions = Iterable[Partition] | None
"""What a rebalance signal carries: the partitions assigned or revoked (None: none)."""


class Rebalanced(Protocol):
    """A receiver of a rebalance signal: Faust sends it the app, the partitions, and the signal."""

    def __call__(
        self, sender: object, partitions: Partitions = None, /, *, signal: object
    ) -> Awaitable[None]: ...


def on_rebalance(app: AppT, *, revoked: Rebalanced, assigned: Rebalanced) -> None:
    """Connect ``revoked`` to the app's ``on_partitions_revoked``, ``assigned`` to its
    ``on_partitions_assigned``.

    mode types a receiver as taking the partitions first, then any ``*args``; Faust calls it
    with the app, then the partitions, which a ``Rebalanced`` takes.
    """
    signals = ((app.on_partitions_revoked, revoked), (app.on_partitions_assigned, assigned))
    for signal, receiver in signals:
        signal.connect(receiver)  # type: ignore[arg-type]  # mode's receiver type: see above
