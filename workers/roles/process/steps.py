"""What one event, deadline or retry does to an instance: pure, deterministic, no I/O.

Each step returns the instance to write (the next revision) and what happened. Whatever a
reaction decides — its state, its commands (each with a command id derived from its trigger and
its place in the reaction), its deadlines set and cancelled — is in that one instance, so one
write stores it all or none of it. A reaction that raises, or returns what the runtime cannot
carry out, leaves the instance ``stuck`` with its reason and its trigger (run again on retry);
events that come meanwhile are held, in order, for after the retry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from snapshot_rules.process import Due, ProcessManager, Reaction, check_reaction
from topics.envelope import Event, decode, encode
from topics.errors import InvalidEnvelope
from workers.ports import (
    ACTIVE,
    DONE,
    RETRYING,
    STUCK,
    Deadline,
    Fired,
    Instance,
    PendingCommand,
    Stuck,
    Trigger,
)

MAX_HELD = 1000
"""Events a stuck instance holds for after its retry; past it they are dead-lettered only."""
FIRED_KEPT = 10
"""The last deadlines fired, kept on the instance to be shown."""


@dataclass(frozen=True, slots=True)
class Step:
    """The instance to write (None: nothing to write) and what happened: ``applied``,
    ``skipped`` (seen already), ``unmatched`` (no instance to advance, or it ended), ``held``,
    ``dropped`` (past MAX_HELD), ``stuck``, ``retried``, ``fired``."""

    instance: Instance | None
    outcome: str
    sent: int = 0
    set: int = 0
    cancelled: int = 0


def command_id(process: str, trigger: str, n: int) -> str:
    """The id of the ``n``-th command of the reaction to ``trigger`` (an event's id, or
    ``dl:<deadline id>``): the same on every redelivery, crash or retry."""
    return f"pm:{process}:{trigger}:{n}"


def deadline_id(process: str, key: str, name: str, trigger: str) -> str:
    """A deadline's id: from the instance, the name and what set it."""
    digest = hashlib.blake2b(f"{process}\x00{key}\x00{name}\x00{trigger}".encode(), digest_size=8)
    return digest.hexdigest()


def aggregate_of(event: Event) -> str:
    return f"{event.aggregate_type}:{event.aggregate_id}"


def on_event(
    manager: ProcessManager, key: str, found: Instance | None, event: Event, now: datetime
) -> Step:
    """``event`` (one ``manager`` reacts to, keyed ``key``) applied to its instance (``found``,
    None when it has none yet)."""
    if found is None:
        if manager.phase(event) != "start":
            return Step(None, "unmatched")
        found = Instance(manager.name, key, 0, ACTIVE, None, now, now)
    if found.seen.get(aggregate_of(event), 0) >= (event.version or 0):
        return Step(None, "skipped")
    if found.status == DONE:
        return Step(None, "unmatched")
    if found.status in (STUCK, RETRYING):
        return _hold(found, event, now)
    return react(manager, found, event, now)


@dataclass(frozen=True, slots=True)
class Folded:
    """A batch of one instance's events applied in order: the instance to write (its next
    revision; None: nothing to write), what happened to each event, and the counts."""

    instance: Instance | None
    outcomes: tuple[str, ...]
    sent: int = 0
    set: int = 0
    cancelled: int = 0


def fold(
    manager: ProcessManager,
    key: str,
    found: Instance | None,
    events: Sequence[Event],
    now: datetime,
) -> Folded:
    """``events`` (of instance ``key``, in order) applied to ``found``: one write for them all."""
    current, changed, outcomes = found, False, []
    sent = set_ = cancelled = 0
    for event in events:
        step = on_event(manager, key, current, event, now)
        outcomes.append(step.outcome)
        if step.instance is not None:
            current, changed = step.instance, True
            sent, set_, cancelled = sent + step.sent, set_ + step.set, cancelled + step.cancelled
    if not changed or current is None:
        return Folded(None, tuple(outcomes))
    written = replace(current, revision=(found.revision if found is not None else 0) + 1)
    return Folded(written, tuple(outcomes), sent, set_, cancelled)


def react(manager: ProcessManager, base: Instance, event: Event, now: datetime) -> Step:
    """Run ``manager.react`` on ``event`` and apply what it decided."""
    try:
        reaction = check_reaction(manager, manager.react(base.state, event))
    except Exception as e:
        return stuck(base, e, Trigger(event=encode(event)), now)
    seen = {**base.seen, aggregate_of(event): event.version or 0}
    correlation = event.metadata.correlation_id
    step = _apply(
        manager, replace(base, seen=seen), reaction, (event.id, event.occurred_at, correlation), now
    )
    if manager.phase(event) == "end" and step.instance is not None:
        ended = replace(step.instance, status=DONE, deadlines=())
        return replace(
            step, instance=ended, cancelled=step.cancelled + len(step.instance.deadlines)
        )
    return step


def fire(manager: ProcessManager, base: Instance, deadline: Deadline, now: datetime) -> Step:
    """Run ``manager.on_deadline`` on ``deadline`` (taken off the pending ones)."""
    pending = tuple(d for d in base.deadlines if d.id != deadline.id)
    fired = Fired(deadline.id, deadline.name, deadline.due_at, now)
    base = replace(base, deadlines=pending, fired=(*base.fired, fired)[-FIRED_KEPT:])
    due = Due(deadline.name, deadline.id, deadline.due_at, deadline.data)
    try:
        if manager.on_deadline is None:
            raise ValueError(f"process {manager.name} declares no on_deadline for {deadline.name}")
        reaction = check_reaction(manager, manager.on_deadline(base.state or {}, due))
    except Exception as e:
        return stuck(base, e, Trigger(deadline=deadline), now)
    cause = (f"dl:{deadline.id}", deadline.due_at, deadline.correlation_id)
    step = _apply(manager, base, reaction, cause, now)
    return replace(step, outcome="fired") if step.outcome == "applied" else step


def due_deadline(instance: Instance, now: datetime) -> Deadline | None:
    """The instance's soonest deadline due at ``now`` (None: none is, or it is not active)."""
    due = [d for d in instance.deadlines if d.due_at <= now]
    if instance.status != ACTIVE or not due:
        return None
    return min(due, key=lambda d: (d.due_at, d.id))


def retry(manager: ProcessManager, instance: Instance, now: datetime) -> Step:
    """A stuck instance tried again: its trigger reacted to again (or, when a command was
    refused, its outbox sent again by the caller), then the events it held, in order."""
    trouble = instance.stuck
    resume = trouble.resume if trouble is not None else ACTIVE
    base = replace(instance, status=ACTIVE, stuck=None, held=(), retries=instance.retries + 1)
    trigger = trouble.trigger if trouble is not None else None
    if trigger is not None and trigger.event is not None:
        step = _retried_event(manager, base, trigger.event, now)
    elif trigger is not None and trigger.deadline is not None:
        step = fire(manager, base, trigger.deadline, now)
    else:  # a refused command: the caller sends the outbox again
        step = Step(
            replace(base, status=resume, revision=base.revision + 1, updated_at=now), "retried"
        )
    step = _then_held(manager, step, instance.held, now)
    if step.instance is not None:
        step = replace(step, instance=replace(step.instance, revision=instance.revision + 1))
    return step


def _retried_event(manager: ProcessManager, base: Instance, raw: bytes, now: datetime) -> Step:
    try:
        event = decode(raw)
    except InvalidEnvelope as e:  # written by this code: only a store that changed it
        return stuck(base, e, None, now)
    return react(manager, base, event, now)


def _then_held(manager: ProcessManager, step: Step, held: Sequence[bytes], now: datetime) -> Step:
    """The held events applied after ``step``, in order; once stuck, it holds the rest again."""
    for n, raw in enumerate(held):
        current = step.instance
        if current is None:
            break
        if current.status == STUCK:
            return replace(step, instance=replace(current, held=(*current.held, *held[n:])))
        try:
            event = decode(raw)
        except InvalidEnvelope:
            continue  # never written so by this code
        following = on_event(manager, current.key, current, event, now)
        if following.instance is not None:
            outcome = "stuck" if following.outcome == "stuck" else step.outcome
            step = Step(
                following.instance,
                outcome,
                step.sent + following.sent,
                step.set + following.set,
                step.cancelled + following.cancelled,
            )
    return step


def stuck(base: Instance, error: Exception, trigger: Trigger | None, now: datetime) -> Step:
    """``base`` stopped by ``error`` in its reaction to ``trigger`` (None: nothing to run again)."""
    reason = "reaction_invalid" if isinstance(error, ValueError) else "reaction_failed"
    detail = str(error) if reason == "reaction_invalid" else f"{type(error).__name__}: {error}"
    return Step(stopped(base, reason, detail[:1000], trigger, now), "stuck")


def stopped(
    base: Instance, reason: str, detail: str, trigger: Trigger | None, now: datetime
) -> Instance:
    """``base`` as a stuck instance, written at its next revision (a retry returns it to its
    status: active, or done when a command of its last reaction was refused)."""
    resume = DONE if base.status == DONE else ACTIVE
    return replace(
        base,
        status=STUCK,
        revision=base.revision + 1,
        updated_at=now,
        stuck=Stuck(reason, detail, now, trigger, attempts=base.retries + 1, resume=resume),
    )


def _hold(found: Instance, event: Event, now: datetime) -> Step:
    trouble = found.stuck
    waiting = {decode(raw).id for raw in found.held}
    if trouble is not None and trouble.trigger is not None and trouble.trigger.event is not None:
        waiting.add(decode(trouble.trigger.event).id)
    if event.id in waiting:
        return Step(None, "skipped")
    if len(found.held) >= MAX_HELD:
        return Step(None, "dropped")
    held = (*found.held, encode(event))
    return Step(replace(found, held=held, revision=found.revision + 1, updated_at=now), "held")


Cause = tuple[str, datetime, str | None]
"""What a reaction reacted to: its id (an event's, or ``dl:<deadline id>``), its time (the
event's ``occurred_at``, the deadline's due time: what new deadlines count from) and the
conversation it belongs to (its correlation id)."""


def _apply(
    manager: ProcessManager, base: Instance, reaction: Reaction, cause: Cause, now: datetime
) -> Step:
    """``reaction`` (to ``cause``) applied to ``base``."""
    trigger, at, correlation = cause
    commands = tuple(
        PendingCommand(
            command_id(manager.name, trigger, n),
            send.aggregate_type,
            send.aggregate_id,
            send.type,
            dict(send.data),
            trigger.removeprefix("dl:"),
            correlation,
        )
        for n, send in enumerate(reaction.send)
    )
    dropped = set(reaction.cancel_deadlines) | {d.name for d in reaction.set_deadlines}
    kept = tuple(d for d in base.deadlines if d.name not in dropped)
    cancelled = sum(1 for d in base.deadlines if d.name in set(reaction.cancel_deadlines))
    added = tuple(
        Deadline(
            deadline_id(manager.name, base.key, d.name, trigger),
            d.name,
            at + timedelta(seconds=d.after_s),
            dict(d.data),
            correlation,
        )
        for d in reaction.set_deadlines
    )
    outbox = (*base.outbox, *commands)
    instance = replace(
        base,
        revision=base.revision + 1,
        status=DONE if reaction.done else ACTIVE,
        state=dict(reaction.state),
        updated_at=now,
        outbox=outbox,
        unsent_since=(base.unsent_since or now) if outbox else None,
        deadlines=() if reaction.done else (*kept, *added),
    )
    return Step(instance, "applied", len(commands), len(added), cancelled)
