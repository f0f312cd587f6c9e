"""What became of an accepted event the appender dead-lettered instead of judging it.

A record the appender cannot take (undecodable, oversized, an aggregate or event type, schema
version or mode it does not know, a version already set) goes to the dead-letter topic. When it
carries an event that a command was accepted for (a newer commands process than the appender,
settings that differ between them, a garbled copy), that command's outcome must not stay
``accepted``: its fate is recorded as the store's refusals are, so ``GET …/outcome`` and a retry
with the command id say ``dead_lettered`` with the reason, ``commands.replies`` is told, and a
mark naming the event is dropped (the next request is checked against the store, not against an
event that will never be stored).

The event is known from the envelope when the bytes are one (also when they are too large), or
else from the record's key and the headers the command path sets (``event_id``, and
``command_id``, whose derived event id must match). A copy of an event that is stored, that the
store already refused, or that waits in the appender decides nothing: that event's own fate does.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from topics.envelope import Actor, aggregate_key, command_scope, decode, derived_event_id, utc_now
from topics.errors import InvalidEnvelope, Unavailable
from workers.ports import (
    EventStore,
    Outgoing,
    Rejection,
    Rejections,
)
from workers.roles.append.given import Replies
from workers.roles.deadletter import DeadLetter
from workers.roles.outcomes import Refused, encode, refusal_at_store

log = logging.getLogger(__name__)

MAX_DETAIL = 500  # characters of the dead letter's detail kept in the recorded message


@dataclass(frozen=True, slots=True)
class Fate:
    """A dead letter whose event is known: the refusal its command is told."""

    letter: DeadLetter
    rejection: Rejection
    derived: bool  # the event id derives from (aggregate, command id): the memory may learn it
    memory_id: str | None = None  # the command id in its sender's scope (what the memory keys)


def fate_of(letter: DeadLetter) -> Fate | None:
    """The event a dead letter carries, or None when it cannot be known (bytes that are no
    envelope, with no key or ``event_id`` header, or headers that contradict each other)."""
    record = letter.record
    try:
        event = decode(record.value)
    except InvalidEnvelope:
        event = None
    actor: Actor | None = None
    scope: str | None = None
    if event is not None:
        event_id, aggregate_type, aggregate_id = event.id, event.aggregate_type, event.aggregate_id
        event_type, command_id = event.type, event.metadata.command_id
        actor = event.metadata.actor
    else:
        headers = {name: value for name, value in record.headers}
        raw_id, key = headers.get("event_id"), record.key
        if not raw_id or key is None or b":" not in key:
            return None
        try:
            aggregate_type, aggregate_id = key.decode().split(":", 1)
            event_id = raw_id.decode()
            event_type = headers.get("event_type", b"").decode()
            command_id = headers["command_id"].decode() if "command_id" in headers else None
            scope = headers["command_scope"].decode() if "command_scope" in headers else None
        except UnicodeDecodeError:
            return None
        if command_id is not None and (
            (scope is not None and not scope.endswith(f"\x1f{command_id}"))
            or derived_event_id(aggregate_type, aggregate_id, scope or command_id) != event_id
        ):
            return None  # headers that do not agree name no command for sure
    # A decoded event names its sender (metadata.actor), a record's headers its scope: the
    # command id is its sender's (topics.envelope.command_scope).
    if command_id is None:
        memory_id = None
    elif event is None:
        memory_id = scope or command_id
    else:
        memory_id = command_scope(command_id, actor)
    derived = memory_id is not None and (
        derived_event_id(aggregate_type, aggregate_id, memory_id) == event_id
    )
    message = (
        f"the appender dead-lettered this event ({letter.reason}: {letter.detail[:MAX_DETAIL]}); "
        "nothing was stored. An operator may replay it (eventfleet dlq) once it can be taken, "
        "or send a corrected command with a new command_id."
    )
    rejection = Rejection(
        event_id=event_id,
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        event_type=event_type,
        reason=letter.reason,
        message=message,
        command_id=command_id if derived else None,
        rejected_at=utc_now(),
    )
    return Fate(letter, rejection, derived, memory_id if derived else None)


class DeadLetterFates:
    """Records the fate of the accepted events among the appender's dead letters."""

    def __init__(
        self,
        *,
        store: EventStore,
        rejections: Rejections,
        replies: Replies,
        replies_topic: str,
    ) -> None:
        self._store = store
        self._rejections = rejections
        self._producer = replies.producer
        self._replies_topic = replies_topic
        self._render = replies.render
        self._marker = replies.marker
        self._memory = replies.memory

    async def record(self, letters: Sequence[DeadLetter], *, held: Collection[str]) -> None:
        """Record, answer and unmark each letter's event whose fate is this letter.

        ``held``: ids of events waiting in the appender (another copy decides them). A round
        retried after an error records the same fate again (the first record stays) and may
        answer twice (replies are at least once); raises Unavailable (the store) or
        StreamUnavailable (the reply), so the round is retried before its records are acked.
        """
        fates = [
            f for f in map(fate_of, letters) if f is not None and f.rejection.event_id not in held
        ]
        if not fates:
            return
        ids = list(dict.fromkeys(f.rejection.event_id for f in fates))
        refs = list(
            dict.fromkeys((f.rejection.aggregate_type, f.rejection.aggregate_id) for f in fates)
        )
        stored = set(await self._store.find(ids, aggregates=refs))
        refused = await self._rejections.find([i for i in ids if i not in stored])
        fates = [
            f
            for f in _first_per_event(fates)
            if f.rejection.event_id not in stored
            # Another decision came first (the store refused it); this letter's own record,
            # from a round retried after an error, is recorded and answered again.
            and refused.get(f.rejection.event_id, f.rejection).reason == f.rejection.reason
        ]
        if not fates:
            return
        await self._unmark(fates)
        await self._rejections.record([f.rejection for f in fates])
        outcomes = [refusal_at_store(f.rejection) for f in fates]
        for fate, outcome in zip(fates, outcomes, strict=True):
            await self._remember(fate, outcome)
        replies = [
            Outgoing(f.letter.record.key, self._render(outcome), f.letter.record.headers)
            for f, outcome in zip(fates, outcomes, strict=True)
        ]
        await self._producer.send_many(self._replies_topic, replies)
        for fate in fates:
            r = fate.rejection
            log.info(
                "dead-lettered %s %s %s (%s): its command is told so",
                r.aggregate_type,
                r.aggregate_id,
                r.event_id,
                r.reason,
            )

    async def _unmark(self, fates: Sequence[Fate]) -> None:
        """A mark naming an event that will never be stored is dropped (only if it names it):
        the next request reads the store instead of following a phantom."""
        if self._marker is None:
            return
        for fate in fates:
            r = fate.rejection
            try:
                await self._marker.repair(_key(r), r.event_id, None)
            except Unavailable as e:  # only a cache: the store judges what follows it anyway
                log.warning("mark of %s %s not dropped: %s", r.aggregate_type, r.aggregate_id, e)

    async def _remember(self, fate: Fate, outcome: Refused) -> None:
        """Best effort: a retry that finds no record asks the rejections anyway."""
        r = fate.rejection
        if self._memory is None or not fate.derived or fate.memory_id is None:
            return
        try:
            await self._memory.settle(_key(r), fate.memory_id, encode(outcome))
        except Unavailable as e:
            log.warning("dead letter of command %s not recorded in the memory: %s", r.command_id, e)


def _first_per_event(fates: Sequence[Fate]) -> list[Fate]:
    """One fate per event id: the first of its dead-lettered copies."""
    seen: set[str] = set()
    first = []
    for fate in fates:
        if fate.rejection.event_id not in seen:
            seen.add(fate.rejection.event_id)
            first.append(fate)
    return first


def _key(rejection: Rejection) -> str:
    return aggregate_key(rejection.aggregate_type, rejection.aggregate_id).decode()
