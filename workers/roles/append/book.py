"""What the appender holds between calls: the events waiting, the heads it knows, the ids decided.

One ``Book`` is shared by the appender's parts (``intake``, ``deciding``, ``effects``,
``parking``), under the appender's lock, one batch or tick at a time. The book owns its state:
its fields are private, every change is a method named for what it means (``wait``,
``put_back``, ``remember_head``, ``forget``, ``note_stored``, ``hold_ready``, ...), so the
bounds (the heads' LRU order, the bounded id sets) and the invariants (an event waits once, an
empty queue is dropped) are kept in this one place; the parts read it through small methods
and read-only views.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Collection, Container, Sequence
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
        self._heads: OrderedDict[AggregateRef, Head] = OrderedDict()
        self._waiting: dict[AggregateRef, list[Waiting]] = {}
        self._stored = Recent()
        self._refused = Recent()
        self._unfinished: tuple[Round, list[DeadLetter]] | None = None
        self._ready: list[Record] = []  # decided, not yet returned (see ``take_ready``)
        self._gap_below: Callable[[int, int], bool] = lambda partition, offset: False

    @property
    def stored(self) -> Container[str]:
        """Ids this process knows stored (the most recent ``CACHE_SIZE``)."""
        return self._stored

    @property
    def refused(self) -> Container[str]:
        """Ids this process knows refused (the most recent ``CACHE_SIZE``)."""
        return self._refused

    @property
    def ready(self) -> Sequence[Record]:
        """Records decided and not yet returned (``hold_ready``, ``take_ready``)."""
        return self._ready

    def gap_below(self, partition: int, offset: int) -> bool:
        """Whether an offset of ``partition`` below ``offset`` has not reached this process yet."""
        return self._gap_below(partition, offset)

    # --- decided ids -----------------------------------------------------------------------

    def decided(self, event_id: str) -> bool:
        """Whether this process knows the event stored or refused."""
        return event_id in self._stored or event_id in self._refused

    def note_stored(self, ids: Collection[str]) -> None:
        self._stored.add(ids)

    def note_refused(self, ids: Collection[str]) -> None:
        self._refused.add(ids)

    # --- waiting events --------------------------------------------------------------------

    def queue_of(self, ref: AggregateRef) -> Sequence[Waiting]:
        """The events waiting on ``ref``, in order (empty when none waits)."""
        return self._waiting.get(ref, ())

    def held_ids(self) -> set[str]:
        """The ids of every event waiting here."""
        return {w.event.id for queue in self._waiting.values() for w in queue}

    def due(self, now: float) -> list[AggregateRef]:
        """The aggregates whose earliest waiting event is due at ``now``."""
        return [ref for ref, queue in self._waiting.items() if min_deadline(queue) <= now]

    def count_waiting(self) -> int:
        return sum(len(queue) for queue in self._waiting.values())

    def wait(self, event: Event, record: Record, deadline: float) -> None:
        """Queue ``event`` behind what waits on its aggregate; an event waiting here already
        holds ``record`` as a copy instead, due by the earlier deadline.

        An event waits once, however its records come (a copy in the replay's batch, a record
        held back past a gap, an event parked twice): a second entry would be judged on the
        head the first one made, and refused although it is stored.
        """
        ref = (event.aggregate_type, event.aggregate_id)
        queue = self._waiting.setdefault(ref, [])
        at = (record.partition, record.offset)
        for i, w in enumerate(queue):
            if w.event.id == event.id:
                held = any((r.partition, r.offset) == at for r in w.records)
                copies = w.copies if held else (*w.copies, record)
                queue[i] = Waiting(w.event, w.record, min(w.deadline, deadline), copies)
                return
        queue.append(Waiting(event, record, deadline))

    def attach_copy(self, event: Event, record: Record) -> None:
        """Hold ``record`` with the waiting event it carries (no-op if it is held already, or
        if its event does not wait here); its deadline stays."""
        queue = self._waiting.get((event.aggregate_type, event.aggregate_id), [])
        for i, w in enumerate(queue):
            if w.event.id != event.id:
                continue
            if all((r.partition, r.offset) != (record.partition, record.offset) for r in w.records):
                queue[i] = Waiting(w.event, w.record, w.deadline, (*w.copies, record))
            return

    def set_waiting(self, ref: AggregateRef, queue: list[Waiting]) -> None:
        if queue:
            self._waiting[ref] = queue
        else:
            self._waiting.pop(ref, None)

    def put_back(self, lost: Sequence[Waiting]) -> None:
        """Events that lost a version race go back to the front of their queues, in order;
        their aggregates' heads are read again."""
        for w in reversed(lost):
            ref = (w.event.aggregate_type, w.event.aggregate_id)
            self._waiting.setdefault(ref, []).insert(0, w)
            self._heads.pop(ref, None)

    def set_gap_check(self, gap_below: Callable[[int, int], bool]) -> None:
        """``gap_below(partition, offset)``: whether an offset below it has not reached this
        process yet (see ``Appender.hold_past_gaps``); none has, until one is set."""
        self._gap_below = gap_below

    # --- heads -----------------------------------------------------------------------------

    def head_of(self, ref: AggregateRef) -> Head | None:
        """The cached head of ``ref``, or None when it is to be read from the store."""
        return self._heads.get(ref)

    def remember_head(self, ref: AggregateRef, head: Head) -> None:
        self._heads[ref] = head
        self._heads.move_to_end(ref)
        while len(self._heads) > CACHE_SIZE:
            self._heads.popitem(last=False)

    def forget_head(self, ref: AggregateRef) -> None:
        """Another writer may have appended to ``ref``: its head is read again."""
        self._heads.pop(ref, None)

    def forget_heads(self) -> None:
        """No cached head can be trusted any longer: every one is read again."""
        self._heads.clear()

    def forget(self, partitions: Collection[int] | None) -> None:
        """Partitions were revoked (None: all): every head, and the waiting records they hold.

        An event also carried by a record of a partition kept here stays, held by that record.
        """
        self.forget_heads()
        for ref in list(self._waiting):
            kept = []
            for w in self._waiting[ref]:
                left = [
                    r for r in w.records if partitions is not None and r.partition not in partitions
                ]
                if left:
                    kept.append(Waiting(w.event, left[0], w.deadline, tuple(left[1:])))
            self.set_waiting(ref, kept)

    # --- rounds and records decided --------------------------------------------------------

    def keep_unfinished(self, done: Round, letters: list[DeadLetter]) -> None:
        """A round whose effects failed: finished first by the next call (``take_unfinished``)."""
        self._unfinished = (done, letters)

    def take_unfinished(self) -> tuple[Round, list[DeadLetter]] | None:
        """The round kept by ``keep_unfinished``, if any; it is no longer kept."""
        unfinished, self._unfinished = self._unfinished, None
        return unfinished

    def hold_ready(self, records: Sequence[Record]) -> None:
        """Decided records no batch the agent retries would return: the next call returns them
        (``take_ready``)."""
        self._ready += records

    def take_ready(self) -> list[Record]:
        """Records decided by an earlier call that could not return them (it failed after
        finishing a round): they are returned by the next call that succeeds, never lost, or
        their partition's commits would stop at them for good."""
        ready, self._ready = self._ready, []
        return ready

    def holds_work(self) -> bool:
        """Whether an event waits, a failed round is to be finished, or decided records are
        not yet returned."""
        return bool(self._waiting) or self._unfinished is not None or bool(self._ready)


def min_deadline(queue: Sequence[Waiting]) -> float:
    return min(w.deadline for w in queue)


def refs_of(pairs: Sequence[tuple[Event, Record]]) -> list[AggregateRef]:
    return [(event.aggregate_type, event.aggregate_id) for event, _ in pairs]
