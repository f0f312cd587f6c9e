"""Parking: what cannot be stored holds back what follows it on its aggregate, until released.

A dead letter whose record names an aggregate of an async domain parks that aggregate: it heads
a queue kept next to the event store (``ParkedEvents``), and every later event of the aggregate
joins the queue in order instead of being judged against a history with a hole. An operator's
replay of the head, or a skip, resolves it; the queue is then judged again in order
(``release_parked``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from topics.envelope import Event, utc_now
from workers.metrics import Metrics
from workers.ports import PARKED, AggregateRef, ParkedEntry, ParkedEvents, Record
from workers.roles.append.book import AppenderConfig, Book, Round, refs_of
from workers.roles.append.deciding import Decider
from workers.roles.append.effects import Effects
from workers.roles.append.fates import fate_of
from workers.roles.append.intake import Intake, event_id_of
from workers.roles.deadletter import DeadLetter, decode_record

log = logging.getLogger(__name__)

PARK_POLL_S = 0.5  # how often parked heads are looked at for an operator's replay or skip
RELEASE_BATCH = 500  # parked entries judged again per aggregate and round

Pairs = list[tuple[Event, Record]]


class Parking:
    """Parks aggregates behind what cannot be stored, and releases them once resolved."""

    def __init__(
        self,
        *,
        book: Book,
        parked: ParkedEvents,
        metrics: Metrics,
        config: AppenderConfig,
        intake: Intake,
        decider: Decider,
        effects: Effects,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._book = book
        self._parked = parked
        self._metrics = metrics
        self._config = config
        self._intake = intake
        self._decider = decider
        self._effects = effects
        self._clock = clock
        self.owned: set[int] = set()  # partitions of the events topic assigned here
        # Parked aggregates (head, highest seq), read whole from the store after every
        # assignment and every PARK_POLL_S; kept up to date with what this process parks.
        self.known: dict[str, tuple[ParkedEntry, int]] | None = None
        # Records of parked (or parking) aggregates past a gap: parked once the gap closes,
        # so a record redelivered into the gap goes first (undecided meanwhile).
        self.held_back: list[tuple[Record, DeadLetter | Event]] = []
        self.next_poll = 0.0

    def assign(self, partitions: Collection[int]) -> None:
        """The events topic's partitions assigned here now: their parked heads are read again
        (another process may have parked their aggregates) and looked at at once."""
        self.owned = set(partitions)
        self.known = None
        self.next_poll = 0.0

    def revoke(self, partitions: Collection[int] | None) -> None:
        """Partitions revoked (None: all): no longer released here; the heads are read again.
        At once, not deferred like ``forget``: an assignment that follows must not be undone."""
        self.owned = set() if partitions is None else self.owned - set(partitions)
        self.known = None

    def holds_work(self) -> bool:
        """Whether a tick has parking work: records held back past a gap, or a poll due."""
        return bool(self.held_back) or self.poll_due()

    def poll_due(self) -> bool:
        """Whether the parked heads are due to be looked at (for a replay or a skip)."""
        return bool(self.owned) and self._clock() >= self.next_poll

    def forget(self, partitions: Collection[int] | None) -> None:
        """Drop what was held back from revoked partitions (None: all): their next owner
        takes those records again."""
        self.held_back = [
            (r, item)
            for r, item in self.held_back
            if partitions is not None and r.partition not in partitions
        ]

    async def park(self, batch: Sorted) -> Sorted:
        """Park what cannot be stored, and what follows it on its aggregate.

        A replay of the head (its command id is the head's ``replay_command_id``) is judged at
        once; the head is then resolved and the queue released (``_release``). Returns the
        letters, events and copies left to handle, the records parked (decided: durably in the
        queue and on the dead-letter topic) and the ids of replays to judge now. A copy of an
        event parked here is decided with it; records of a parked aggregate past a gap are held
        back until it closes (``held_back``). What was held back and is decided now goes to
        ``Book.ready``: it is in no batch the agent retries; what of it is let in to wait is held
        back again if this call fails.
        """
        if not (batch.letters or batch.fresh or self.held_back):
            return batch
        at_batch = {(r.partition, r.offset) for r in [ltr.record for ltr in batch.letters]}
        at_batch |= {(r.partition, r.offset) for _, r in [*batch.fresh, *batch.copies]}
        kept, self.held_back = self.held_back, []
        # A record held back and taken again in this batch (a batch retried) is taken once.
        held_back = [(r, item) for r, item in kept if (r.partition, r.offset) not in at_batch]
        try:
            left = await self._park_now(batch, held_back)
        except BaseException:  # the batch is handled again; what was held back stays so
            self.held_back = kept
            raise
        # What was held back came with an earlier call: it is in no batch the agent retries,
        # so what of it is decided now is kept (``ready``) before anything else can fail,
        # or a failure later in this call would lose it and its partition's commits stop.
        earlier = {(r.partition, r.offset) for r, _ in held_back}
        self._book.hold_ready([r for r in left.parked if (r.partition, r.offset) in earlier])
        left.parked = [r for r in left.parked if (r.partition, r.offset) not in earlier]
        theirs = [ltr for ltr in left.letters if _at(ltr.record) in earlier]
        left.letters = [ltr for ltr in left.letters if _at(ltr.record) not in earlier]
        if theirs:  # if this fails, the round is finished first by the next call (``finish``)
            try:
                await self._effects.finish(Round(), theirs)
            except BaseException:  # the events let in with them are in no batch retried either
                again = [(r, event) for event, r in left.fresh if _at(r) in earlier]
                self.held_back = again + self.held_back  # taken again by the next call
                raise
            self._book.hold_ready([ltr.record for ltr in theirs])
        return left

    async def park_held_back(self, now: float) -> list[AggregateRef]:
        """Park what was held back past a gap that has closed; queue the rest to be judged.

        Returns the aggregates of the events queued. Every
        record held back came with an earlier call, so what ``park`` decides of it is in
        ``Book.ready`` already: no letter and no parked record comes back from it here.
        """
        left = await self.park(Sorted([], [], []))
        for event, record in left.fresh:
            wait = now if event.id in left.urgent else now + self._config.wait_s
            self._book.wait(event, record, wait)
        return refs_of(left.fresh)

    async def _park_now(
        self, batch: Sorted, held_back: list[tuple[Record, DeadLetter | Event]]
    ) -> Sorted:
        letters = batch.letters + [item for _, item in held_back if isinstance(item, DeadLetter)]
        fresh = batch.fresh + [(i, r) for r, i in held_back if not isinstance(i, DeadLetter)]
        starting = {id(letter): self._intake.parkable_key(letter) for letter in letters}
        await self._copies_park_nothing(letters, starting)
        keys = {k for k in starting.values() if k is not None}
        keys |= {event.key.decode() for event, _ in fresh}
        if self.known is None:
            self.known = await self._parked.heads()
        known = self.known
        heads = {key: known[key] for key in keys if key in known}
        if not heads and not any(starting.values()):
            return Sorted(letters, fresh, batch.copies)
        items: list[tuple[Record, DeadLetter | Event]] = [(ltr.record, ltr) for ltr in letters]
        items += [(record, event) for event, record in fresh]
        items += [(record, event) for event, record in batch.copies]
        items.sort(key=lambda item: (item[0].partition, item[0].offset))
        candidates = [
            item
            for item in items
            if (
                starting.get(id(item[1]))
                if isinstance(item[1], DeadLetter)
                else item[1].key.decode() in heads
            )
        ]
        already = await self._parked.sources(
            [f"{r.topic}/{r.partition}/{r.offset}" for r, _ in candidates]
        )
        sorting = _Sorting(
            starting,
            heads,
            set(already),
            {(r.partition, r.offset) for _, r in batch.copies},
            self._book.gap_below,
        )
        for record, item in items:
            sorting.take(record, item)
        self.held_back += sorting.held_back
        await self._write_down(sorting)
        for key, (head, _) in heads.items():  # written: this process knows them from now on
            known[key] = (sorting.resolved.get(key, head), sorting.tails.get(key, 0))
        return sorting.left

    async def _write_down(self, sorting: _Sorting) -> None:
        """Tell the commands of what cannot be stored, dead-letter and park what was parked,
        resolve the heads whose replay came."""
        entries = sorting.entries
        poison = [letter for _, letter in entries if letter.reason != PARKED]
        fates = self._effects.fates
        if poison and fates is not None:  # its command is told, as for any dead letter
            await fates.record(poison, held=self._book.held_ids())
        if entries:
            await self._effects.dead_letters.send([letter for _, letter in entries])
            await self._parked.park([entry for entry, _ in entries])
        for head, replay_id in sorting.replays:
            sorting.resolved[head.key] = await self._parked.resolve(
                head.key, head.seq, "replay", replay_id
            )
        for entry, _ in entries:
            if entry.seq == 1:  # a queue starts: the aggregate is parked
                self._metrics.aggregates_parked.labels("appender", entry.reason).inc()
            log.info("parked %s #%d (%s): %s", entry.key, entry.seq, entry.reason, entry.source)

    async def _copies_park_nothing(
        self, letters: list[DeadLetter], starting: dict[int, str | None]
    ) -> None:
        """A dead-lettered copy of an event that is stored, refused or waits here (a garbled or
        oversized copy of it) leaves no hole: it parks nothing, and is dead-lettered as before."""
        book = self._book
        events = {id(ltr): fate_of(ltr) for ltr in letters if starting.get(id(ltr)) is not None}
        ids = {i: f.rejection.event_id for i, f in events.items() if f is not None}
        if not ids:
            return
        held = book.held_ids()
        unknown = sorted({e for e in ids.values() if e not in held and e not in book.stored})
        refs = [
            (f.rejection.aggregate_type, f.rejection.aggregate_id)
            for f in events.values()
            if f is not None
        ]
        stored = await self._decider.stored_of(unknown, list(dict.fromkeys(refs)))
        judged = set(await self._decider.find_refused([e for e in unknown if e not in stored]))
        gone = held | stored | judged
        for i, event_id in ids.items():
            if event_id in gone or book.decided(event_id):
                starting[i] = None

    async def release_parked(self, now: float, *, keys: Collection[str] | None = None) -> None:
        """Release the queues of this process's parked aggregates (all, or ``keys``) whose head
        was resolved."""
        if keys is None:
            self.next_poll = now + PARK_POLL_S
        heads = await self._parked.heads(None if keys is None else sorted(keys))
        if keys is None:
            self.known = dict(heads)
        for key, (head, _) in heads.items():
            if head.record.partition in self.owned:
                await self._release(key, head, now)

    async def _release(self, key: str, head: ParkedEntry, now: float) -> None:
        """Judge again, in order, the entries behind a resolved head (skipped, or replaced by a
        replay that was decided), up to the next entry that cannot be stored: it heads the
        queue from then on. The entries leave the queue once their fates are written down."""
        book = self._book
        aggregate_type, _, aggregate_id = key.partition(":")
        ref: AggregateRef = (aggregate_type, aggregate_id)
        if head.resolution == "replay" and head.by is not None:
            if not await self._decided(ref, head.by):
                return  # the replay waits here still
        elif head.resolution != "skip" and head.reason != PARKED:
            return  # the head waits for an operator
        queue = await self._parked.queue(key, limit=RELEASE_BATCH)
        removed = [e.source for e in queue[:1] if e.source == head.source and e.resolution]
        waiting_ids = {w.event.id for w in book.queue_of(ref)}
        released: list[tuple[ParkedEntry, Event]] = []
        for entry in queue[len(removed) :]:
            if entry.reason != PARKED:
                break  # a dead letter itself: the new head, it waits for an operator
            event = decode_record(entry.record, max_event_bytes=self._config.max_event_bytes)
            problem = (
                (event.reason, event.detail)
                if isinstance(event, DeadLetter)
                else self._intake.check(event)
            )
            if problem is not None:  # cannot be taken now (the domains changed): the new head
                letter = DeadLetter(entry.record, *problem, parked=(key, entry.seq))
                if self._effects.fates is not None:
                    await self._effects.fates.record([letter], held=waiting_ids)
                await self._effects.dead_letters.send([letter])
                await self._parked.relabel(entry.source, *problem)
                break
            assert not isinstance(event, DeadLetter)
            if event.id not in waiting_ids:  # one still waiting from the last round stays
                released.append((entry, event))
        if released:
            for entry, event in released:  # an event parked twice waits once (``Book.wait``)
                book.wait(event, entry.record, now)
            done = await self._decider.decide([ref], now)
            await self._effects.finish(done, [])
            ours = {(e.record.partition, e.record.offset) for e, _ in released}
            # Parked records were acked when parked: only others decided with them are returned.
            book.hold_ready([r for r in done.decided if (r.partition, r.offset) not in ours])
        decided = [e.source for e, ev in released if book.decided(ev.id)]
        await self._parked.remove(removed + decided)
        if self.known is not None:  # what is left of the queue, if anything
            left = await self._parked.heads([key])
            if key in left:
                self.known[key] = left[key]
            else:
                self.known.pop(key, None)
        if removed or decided:
            log.info(
                "released %d parked events of %s (head %s: %s)",
                len(decided),
                key,
                head.source,
                head.resolution or "released",
            )

    async def _decided(self, ref: AggregateRef, event_id: str) -> bool:
        """Whether an event is stored or refused (known here, or looked up)."""
        if self._book.decided(event_id):
            return True
        if await self._decider.stored_of([event_id], [ref]):
            return True
        return bool(await self._decider.find_refused([event_id]))


def _at(record: Record) -> tuple[int, int]:
    return record.partition, record.offset


@dataclass(slots=True)
class Sorted:
    """A batch as parking leaves it: the letters, events and copies left to handle, the records
    parked (decided), and the ids of head replays to judge at once."""

    letters: list[DeadLetter]
    fresh: Pairs
    copies: Pairs
    parked: list[Record] = field(default_factory=list)
    urgent: set[str] = field(default_factory=set)


class _Sorting:
    """One call's parking decisions, taken record by record in offset order (no I/O)."""

    def __init__(
        self,
        starting: dict[int, str | None],
        heads: dict[str, tuple[ParkedEntry, int]],
        already: set[str],
        copy_at: set[tuple[int, int]],
        gap_below: Callable[[int, int], bool],
    ) -> None:
        self.starting = starting  # per dead letter (by id), the aggregate it parks, or None
        self.heads = heads  # the parked aggregates met (and those this call starts)
        self.already = already  # sources parked before: a redelivery keeps its first seq
        self.copy_at = copy_at
        self.gap_below = gap_below
        self.tails = {key: last for key, (_, last) in heads.items()}
        self.at = utc_now()
        self.left = Sorted([], [], [])
        self.entries: list[tuple[ParkedEntry, DeadLetter]] = []
        self.parked_ids: set[str] = set()
        self.replays: list[tuple[ParkedEntry, str]] = []
        self.resolved: dict[str, ParkedEntry] = {}
        self.holding: set[str] = set()
        self.held_back: list[tuple[Record, DeadLetter | Event]] = []

    def take(self, record: Record, item: DeadLetter | Event) -> None:
        left, heads = self.left, self.heads
        key_of = self.starting[id(item)] if isinstance(item, DeadLetter) else item.key.decode()
        if (record.partition, record.offset) in self.copy_at and not isinstance(item, DeadLetter):
            if item.id in self.parked_ids:  # its event is parked: decided with it
                left.parked.append(record)
                return
            if key_of not in self.holding and key_of not in heads:
                left.copies.append((item, record))  # held with its waiting event
                return
        if key_of is not None and (
            key_of in self.holding
            or (
                (key_of in heads or isinstance(item, DeadLetter))
                and self.gap_below(record.partition, record.offset)
            )
        ):
            self.holding.add(key_of)  # a record redelivered into the gap may go first
            self.held_back.append((record, item))
            return
        if isinstance(item, DeadLetter):
            key = self.starting[id(item)]
            if key is None:
                left.letters.append(item)
                return
            reason, detail, event_id = item.reason, item.detail, event_id_of(record)
        else:
            key = item.key.decode()
            head = heads[key][0] if key in heads else None
            if head is None:
                left.fresh.append((item, record))
                return
            if item.metadata.command_id == head.replay_command_id and (
                head.resolution is None or head.by == item.id
            ):  # the head's replay: judged now, on the stored head
                left.fresh.append((item, record))
                left.urgent.add(item.id)
                if head.resolution is None:
                    self.replays.append((head, item.id))
                return
            reason, event_id = PARKED, item.id
            self.parked_ids.add(item.id)
            detail = f"{key} is parked behind {head.source} ({head.reason}); it waits in order"
        self._park(record, key, reason, detail, event_id)

    def _park(
        self, record: Record, key: str, reason: str, detail: str, event_id: str | None
    ) -> None:
        self.left.parked.append(record)
        source = f"{record.topic}/{record.partition}/{record.offset}"
        if source in self.already:
            return  # parked before (a redelivery): its entry keeps its first seq
        seq = self.tails.get(key, 0) + 1
        self.tails[key] = seq
        entry = ParkedEntry(key, seq, record, reason, detail, event_id, self.at)
        self.entries.append((entry, DeadLetter(record, reason, detail, parked=(key, seq))))
        if key not in self.heads:
            self.heads[key] = (entry, seq)
