"""What the appender holds between calls: the events waiting, the heads it knows, the ids decided.

One ``Book`` is shared by the appender's parts (``intake``, ``deciding``, ``effects``,
``parking``); each reads and writes it under the appender's lock, one batch or tick at a time.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from topics.envelope import Event
from workers.ports import AggregateRef, Head, Record
from workers.roles.append.judge import Refusal, Waiting
from workers.roles.deadletter import DeadLetter

CACHE_SIZE = 100_000


@dataclass(frozen=True, slots=True)
class AppenderConfig:
    """Topics and bounds of the appender."""

    stored_topic: str
    replies_topic: str
    max_event_bytes: int
    wait_s: float = 2.0  # longest an event waits for the event it was validated after
    judge_access: bool = False
    """Judge who sent each event (access rules with a store check; needs a loader): on
    whenever the HTTP door names actors (EVENTFLEET_AUTH jwt or proxy)."""


class Recent:
    """A bounded set of recently seen ids (oldest forgotten first)."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._size = size

    def add(self, ids: Collection[str]) -> None:
        for event_id in ids:
            self._ids[event_id] = None
            self._ids.move_to_end(event_id)
        while len(self._ids) > self._size:
            self._ids.popitem(last=False)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids


@dataclass(frozen=True, slots=True)
class Either:
    """Ids just looked up, or remembered from earlier rounds."""

    first: set[str]
    second: Recent

    def __contains__(self, item: object) -> bool:
        return item in self.first or item in self.second


@dataclass(slots=True)
class Round:
    """What one decision round produced: to publish, to refuse, records decided."""

    published: list[Event] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    decided: list[Record] = field(default_factory=list)
    parents: dict[str, Sequence[tuple[str, bytes]]] = field(default_factory=dict)
    """Traced: the headers of each published event's record (the context it continues)."""


class Book:
    """The appender's working state: waiting events by aggregate, cached heads, decided ids."""

    def __init__(self) -> None:
        self.heads: OrderedDict[AggregateRef, Head] = OrderedDict()
        self.waiting: dict[AggregateRef, list[Waiting]] = {}
        self.stored = Recent()
        self.refused = Recent()
        self.unfinished: tuple[Round, list[DeadLetter]] | None = None
        self.ready: list[Record] = []  # decided, not yet returned (see ``take_ready``)
        self.gap_below: Callable[[int, int], bool] = lambda partition, offset: False

    def decided(self, event_id: str) -> bool:
        """Whether this process knows the event stored or refused."""
        return event_id in self.stored or event_id in self.refused

    def held_ids(self) -> set[str]:
        """The ids of every event waiting here."""
        return {w.event.id for queue in self.waiting.values() for w in queue}

    def wait(self, event: Event, record: Record, deadline: float) -> None:
        """Queue ``event`` behind what waits on its aggregate; an event waiting here already
        holds ``record`` as a copy instead, due by the earlier deadline.

        An event waits once, however its records come (a copy in the replay's batch, a record
        held back past a gap, an event parked twice): a second entry would be judged on the
        head the first one made, and refused although it is stored.
        """
        ref = (event.aggregate_type, event.aggregate_id)
        queue = self.waiting.setdefault(ref, [])
        at = (record.partition, record.offset)
        for i, w in enumerate(queue):
            if w.event.id == event.id:
                held = any((r.partition, r.offset) == at for r in w.records)
                copies = w.copies if held else (*w.copies, record)
                queue[i] = Waiting(w.event, w.record, min(w.deadline, deadline), copies)
                return
        queue.append(Waiting(event, record, deadline))

    def set_waiting(self, ref: AggregateRef, queue: list[Waiting]) -> None:
        if queue:
            self.waiting[ref] = queue
        else:
            self.waiting.pop(ref, None)

    def remember_head(self, ref: AggregateRef, head: Head) -> None:
        self.heads[ref] = head
        self.heads.move_to_end(ref)
        while len(self.heads) > CACHE_SIZE:
            self.heads.popitem(last=False)

    def take_ready(self) -> list[Record]:
        """Records decided by an earlier call that could not return them (it failed after
        finishing a round): they are returned by the next call that succeeds, never lost, or
        their partition's commits would stop at them for good."""
        ready, self.ready = self.ready, []
        return ready


def min_deadline(queue: Sequence[Waiting]) -> float:
    return min(w.deadline for w in queue)


def refs_of(pairs: Sequence[tuple[Event, Record]]) -> list[AggregateRef]:
    return [(event.aggregate_type, event.aggregate_id) for event, _ in pairs]
