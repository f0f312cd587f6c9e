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

from snapshot_rules.domain import Domains, Mode
from topics.envelope import Event, utc_now
from workers.metrics import Metrics
from workers.ports import PARKED, AggregateRef, EventStore, ParkedEntry, ParkedEvents, Record
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
        store: EventStore,
        parked: ParkedEvents,
        domains: Domains,
        metrics: Metrics,
        config: AppenderConfig,
        intake: Intake,
        decider: Decider,
        effects: Effects,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._book = book
        self._store = store
        self._parked = parked
        self._domains = domains
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

    def poll_due(self) -> bool:
        """Whether the parked heads are due to be looked at (for a replay or a skip)."""
        return bool(self.owned) and self._clock() >= self.next_poll

    def forget(self, partitions: Collection[int] | None) -> None:
        """Drop what was held back from revoked partitions (None: all): their next owner
        takes those records again."""
        self.held_back = [
            (r, item) for r, item in self.held_back
            if partitions is not None and r.partition not in partitions
        ]  # fmt: skip

    def _parkable_key(self, letter: DeadLetter) -> str | None:
        """The aggregate a dead letter parks (from its record's key): one of an async domain."""
        raw = letter.record.key
        if raw is None:
            return None
        try:
            key = raw.decode()
        except UnicodeDecodeError:
            return None
        aggregate_type, sep, aggregate_id = key.partition(":")
        if not sep or not aggregate_id or aggregate_type not in self._domains:
            return None
        return key if self._domains.get(aggregate_type).mode is Mode.ASYNC else None

    async def park(
        self, letters: list[DeadLetter], fresh: Pairs, copies: Pairs
    ) -> tuple[list[DeadLetter], Pairs, Pairs, list[Record], set[str]]:
        """Park what cannot be stored, and what follows it on its aggregate.

        A replay of the head (its command id is the head's ``replay_command_id``) is judged at
        once; the head is then resolved and the queue released (``_release``). Returns the
        letters, events and copies left to handle, the records parked (decided: durably in the
        queue and on the dead-letter topic) and the ids of replays to judge now. A copy of an
        event parked here is decided with it; records of a parked aggregate past a gap are held
        back until it closes (``held_back``). What was held back and is decided now goes to
        ``Book.ready``: it is in no batch the agent retries.
        """
        if not (letters or fresh or self.held_back):
            return letters, fresh, copies, [], set()
        batch = {(r.partition, r.offset) for r in [ltr.record for ltr in letters]}
        batch |= {(r.partition, r.offset) for _, r in [*fresh, *copies]}
        kept, self.held_back = self.held_back, []
        # A record held back and taken again in this batch (a batch retried) is taken once.
        held_back = [(r, item) for r, item in kept if (r.partition, r.offset) not in batch]
        try:
            letters, fresh, copies, parked, urgent = await self._park_now(
                letters, fresh, copies, held_back
            )
        except BaseException:  # the batch is handled again; what was held back stays so
            self.held_back = kept
            raise
        # What was held back came with an earlier call: it is in no batch the agent retries,
        # so what of it is decided now is kept (``ready``) before anything else can fail,
        # or a failure later in this call would lose it and its partition's commits stop.
        earlier = {(r.partition, r.offset) for r, _ in held_back}
        self._book.ready += [r for r in parked if (r.partition, r.offset) in earlier]
        parked = [r for r in parked if (r.partition, r.offset) not in earlier]
        theirs = [ltr for ltr in letters if (ltr.record.partition, ltr.record.offset) in earlier]
        letters = [
            ltr for ltr in letters if (ltr.record.partition, ltr.record.offset) not in earlier
        ]
        if theirs:  # if this fails, the round is finished first by the next call (``finish``)
            await self._effects.finish(Round(), theirs)
            self._book.ready += [ltr.record for ltr in theirs]
        return letters, fresh, copies, parked, urgent

    async def park_held_back(self, now: float) -> list[AggregateRef]:
        """Park what was held back past a gap that has closed; queue the rest to be judged.

        Returns the aggregates of the events queued. Every
        record held back came with an earlier call, so what ``park`` decides of it is in
        ``Book.ready`` already: no letter and no parked record comes back from it here.
        """
        _, fresh, _, _, urgent = await self.park([], [], [])
        for event, record in fresh:
            self._book.wait(event, record, now if event.id in urgent else now + self._config.wait_s)
        return refs_of(fresh)

    async def _park_now(
        self,
        letters: list[DeadLetter],
        fresh: Pairs,
        copies: Pairs,
        held_back: list[tuple[Record, DeadLetter | Event]],
    ) -> tuple[list[DeadLetter], Pairs, Pairs, list[Record], set[str]]:
        letters = letters + [item for _, item in held_back if isinstance(item, DeadLetter)]
        fresh = fresh + [(item, r) for r, item in held_back if not isinstance(item, DeadLetter)]
        starting = {id(letter): self._parkable_key(letter) for letter in letters}
        await self._copies_park_nothing(letters, starting)
        keys = {k for k in starting.values() if k is not None}
        keys |= {event.key.decode() for event, _ in fresh}
        if self.known is None:
            self.known = await self._parked.heads()
        known = self.known
        heads = {key: known[key] for key in keys if key in known}
        if not heads and not any(starting.values()):
            return letters, fresh, copies, [], set()
        items: list[tuple[Record, DeadLetter | Event]] = [(ltr.record, ltr) for ltr in letters]
        items += [(record, event) for event, record in fresh]
        copy_at = {(r.partition, r.offset) for _, r in copies}
        items += [(record, event) for event, record in copies]
        items.sort(key=lambda item: (item[0].partition, item[0].offset))
        candidates = [
            item for item in items
            if (starting.get(id(item[1])) if isinstance(item[1], DeadLetter)
                else item[1].key.decode() in heads)
        ]  # fmt: skip
        already = await self._parked.sources(
            [f"{r.topic}/{r.partition}/{r.offset}" for r, _ in candidates]
        )
        tails = {key: last for key, (_, last) in heads.items()}
        at = utc_now()
        entries: list[tuple[ParkedEntry, DeadLetter]] = []
        kept_letters: list[DeadLetter] = []
        kept_fresh: Pairs = []
        kept_copies: Pairs = []
        parked: list[Record] = []
        parked_ids: set[str] = set()
        urgent: set[str] = set()
        replays: list[tuple[ParkedEntry, str]] = []
        holding: set[str] = set()
        for record, item in items:
            source = f"{record.topic}/{record.partition}/{record.offset}"
            key_of = starting[id(item)] if isinstance(item, DeadLetter) else item.key.decode()
            if (record.partition, record.offset) in copy_at and not isinstance(item, DeadLetter):
                if item.id in parked_ids:  # its event is parked: decided with it
                    parked.append(record)
                    continue
                if key_of not in holding and key_of not in heads:
                    kept_copies.append((item, record))  # held with its waiting event
                    continue
            if key_of is not None and (key_of in holding or (
                (key_of in heads or isinstance(item, DeadLetter))
                and self._book.gap_below(record.partition, record.offset)
            )):  # fmt: skip
                holding.add(key_of)  # a record redelivered into the gap may go first
                self.held_back.append((record, item))
                continue
            if isinstance(item, DeadLetter):
                key = starting[id(item)]
                if key is None:
                    kept_letters.append(item)
                    continue
                reason, detail, event_id = item.reason, item.detail, event_id_of(record)
            else:
                key = item.key.decode()
                head = heads[key][0] if key in heads else None
                if head is None:
                    kept_fresh.append((item, record))
                    continue
                if item.metadata.command_id == head.replay_command_id and (
                    head.resolution is None or head.by == item.id
                ):  # the head's replay: judged now, on the stored head
                    kept_fresh.append((item, record))
                    urgent.add(item.id)
                    if head.resolution is None:
                        replays.append((head, item.id))
                    continue
                reason, event_id = PARKED, item.id
                parked_ids.add(item.id)
                detail = f"{key} is parked behind {head.source} ({head.reason}); it waits in order"
            parked.append(record)
            if source in already:
                continue  # parked before (a redelivery): its entry keeps its first seq
            seq = tails.get(key, 0) + 1
            tails[key] = seq
            entry = ParkedEntry(key, seq, record, reason, detail, event_id, at)
            entries.append((entry, DeadLetter(record, reason, detail, parked=(key, seq))))
            if key not in heads:
                heads[key] = (entry, seq)
        poison = [letter for _, letter in entries if letter.reason != PARKED]
        fates = self._effects.fates
        if poison and fates is not None:  # its command is told, as for any dead letter
            await fates.record(poison, held=self._book.held_ids())
        if entries:
            await self._effects.dead_letters.send([letter for _, letter in entries])
            await self._parked.park([entry for entry, _ in entries])
        resolved = {}
        for head, replay_id in replays:
            resolved[head.key] = await self._parked.resolve(head.key, head.seq, "replay", replay_id)
        for key, (head, _) in heads.items():  # written: this process knows them from now on
            known[key] = (resolved.get(key, head), tails.get(key, 0))
        for entry, _ in entries:
            if entry.seq == 1:  # a queue starts: the aggregate is parked
                self._metrics.aggregates_parked.labels("appender", entry.reason).inc()
            log.info("parked %s #%d (%s): %s", entry.key, entry.seq, entry.reason, entry.source)
        return kept_letters, kept_fresh, kept_copies, parked, urgent

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
            for f in events.values() if f is not None
        ]  # fmt: skip
        stored = set(await self._store.find(unknown, aggregates=list(dict.fromkeys(refs))))
        judged = set(await self._decider.find_refused([e for e in unknown if e not in stored]))
        gone = held | stored | judged
        for i, event_id in ids.items():
            if event_id in gone or event_id in book.stored or event_id in book.refused:
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
        waiting_ids = {w.event.id for w in book.waiting.get(ref, ())}
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
            book.ready += [r for r in done.decided if (r.partition, r.offset) not in ours]
        decided = [e.source for e, ev in released if ev.id in book.stored or ev.id in book.refused]
        await self._parked.remove(removed + decided)
        if self.known is not None:  # what is left of the queue, if anything
            left = await self._parked.heads([key])
            if key in left:
                self.known[key] = left[key]
            else:
                self.known.pop(key, None)
        if removed or decided:
            log.info("released %d parked events of %s (head %s: %s)",
                     len(decided), key, head.source, head.resolution or "released")  # fmt: skip

    async def _decided(self, ref: AggregateRef, event_id: str) -> bool:
        """Whether an event is stored or refused (known here, or looked up)."""
        if event_id in self._book.stored or event_id in self._book.refused:
            return True
        if await self._store.find([event_id], aggregates=[ref]):
            return True
        return bool(await self._decider.find_refused([event_id]))
