"""The store is the judge: which waiting events of one aggregate to store now, in which order.

Pure, so it is tested alone (a Hypothesis property runs it over interleavings). Each event
names the event it was validated after (``Event.after``). An event whose predecessor is the
stored head goes next; one whose predecessor is still on its way waits, up to its deadline;
one validated against a stale view (its predecessor is stored but not the head, was refused,
or never comes) is judged against the real head. Judging is the same transition table the
command side uses: an event that does not fit is refused, never stored. An event that carries
an expected version (``Event.expected_version``) is stored only as the version after it: judged
on any other head it is refused (``wrong_expected_version``, naming the head's version), before
its type is looked at. Given the state at the head (``state``), the judge also applies the
domain's access rules that declare a store check (``Access.judge_at_store``) with the event's
``metadata.actor``, folding each event it stores so the next one is judged on the state at its
own predecessor.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import dataclass, field

from snapshot_rules.domain import Domain
from snapshot_rules.replay import Folded
from topics.envelope import NEW_AGGREGATE, Event
from topics.errors import Forbidden, TransitionRejected, expectation_message
from workers.ports import Head, Record

TRANSITION_REJECTED = "transition_rejected_at_store"
INVALID_DATA = "invalid_data"
FORBIDDEN_AT_STORE = "forbidden_at_store"
WRONG_EXPECTED_VERSION = "wrong_expected_version"


@dataclass(frozen=True, slots=True)
class Waiting:
    """An event taken from the events topic and not yet stored or refused."""

    event: Event
    record: Record
    deadline: float  # monotonic seconds: after it, the event is judged without its predecessor
    copies: tuple[Record, ...] = ()  # other records of the same event: decided with it

    @property
    def records(self) -> tuple[Record, ...]:
        """Every record that carries this event: all are decided when it is."""
        return (self.record, *self.copies)


@dataclass(frozen=True, slots=True)
class Refusal:
    """An event the store will not take, and why."""

    waiting: Waiting
    reason: str
    message: str
    current_version: int | None = None  # ``wrong_expected_version``: the head's version


@dataclass(slots=True)
class Verdicts:
    """What ``judge`` decided for one aggregate."""

    store: list[Waiting] = field(default_factory=list)  # in this order, after the head
    refuse: list[Refusal] = field(default_factory=list)
    wait: list[Waiting] = field(default_factory=list)
    head: Head | None = None  # the head once ``store`` is stored


def judge(
    domain: Domain,
    head: Head | None,
    queue: Sequence[Waiting],
    *,
    now: float,
    stored: Container[str] = (),
    refused: Container[str] = (),
    state: Folded | None = None,
) -> Verdicts:
    """Decide for one aggregate's waiting events (in arrival order).

    ``stored``: ids known to be stored (not the head); ``refused``: ids known refused. Both
    mean "whoever was validated after it saw a stale state": judge it on the head now. A head
    this call stores over is known stored too: two events validated after one head (a lost
    mark's race) are decided in one call, not the second at its deadline.
    ``state``: the aggregate's state at the head; given, who sent each event is judged too.
    """
    verdicts = Verdicts(head=head)
    pending = list(queue)
    gone = Either(refused, set())
    passed = Either(stored, set())
    while pending:
        chosen = _next_ready(verdicts.head, pending, now=now, stored=passed, gone=gone)
        if chosen is None:
            break
        pending.remove(chosen)
        refusal = _judge_expectation(chosen, verdicts.head)
        if refusal is not None:
            verdicts.refuse.append(refusal)
            gone.extra.add(chosen.event.id)
            continue
        current = verdicts.head.type if verdicts.head else None
        try:
            domain.check_transition(chosen.event.aggregate_id, current, chosen.event.type)
        except TransitionRejected as e:
            verdicts.refuse.append(
                Refusal(chosen, TRANSITION_REJECTED, f"{e} (checked at the store)")
            )
            gone.extra.add(chosen.event.id)
            continue
        if state is not None:
            refusal, state = _judge_access(domain, chosen, state)
            if refusal is not None:
                verdicts.refuse.append(refusal)
                gone.extra.add(chosen.event.id)
                continue
        verdicts.store.append(chosen)
        if verdicts.head is not None:
            passed.extra.add(verdicts.head.event_id)
        version = (verdicts.head.version if verdicts.head else 0) + 1
        verdicts.head = Head(version, chosen.event.id, chosen.event.type)
    verdicts.wait = pending
    return verdicts


def _judge_expectation(chosen: Waiting, head: Head | None) -> Refusal | None:
    """Refuse ``chosen`` if it expects another version than ``head``'s (0: no head)."""
    expected = chosen.event.expected_version
    version = head.version if head is not None else 0
    if expected is None or expected == version:
        return None
    event = chosen.event
    message = expectation_message(
        f"{event.aggregate_type} {event.aggregate_id}", expected=expected, current=version
    )
    return Refusal(chosen, WRONG_EXPECTED_VERSION, f"{message} (checked at the store)", version)


def _judge_access(domain: Domain, chosen: Waiting, state: Folded) -> tuple[Refusal | None, Folded]:
    """Refuse ``chosen`` if its actor may not send it after ``state``; else the state after it."""
    event = domain.upcast(chosen.event)
    try:
        domain.access.judge_at_store(event.metadata.actor, event.type, event.data, state.state)
    except Forbidden as e:
        message = f"{domain.name} {event.aggregate_id}: {e} ({e.reason}, checked at the store)"
        return Refusal(chosen, FORBIDDEN_AT_STORE, message), state
    version = state.version + 1
    return None, Folded(domain.reducer(state.state, event.with_version(version)), version)


def _next_ready(
    head: Head | None,
    pending: Sequence[Waiting],
    *,
    now: float,
    stored: Container[str],
    gone: Container[str],
) -> Waiting | None:
    """The first waiting event that may be judged now, or None (all wait for predecessors)."""
    waiting_ids = {w.event.id for w in pending}
    for candidate in pending:
        after = candidate.event.after
        if after is None:  # nobody vouched for it: judge it on the head as it is
            return candidate
        if after == NEW_AGGREGATE:
            return candidate  # either it is new (valid) or the aggregate exists (stale)
        if head is not None and after == head.event_id:
            return candidate
        if after in waiting_ids:
            continue  # its predecessor is here and goes first
        if after in stored or after in gone or candidate.deadline <= now:
            return candidate
    return None


def missing_predecessors(head: Head | None, queue: Sequence[Waiting]) -> set[str]:
    """Predecessor ids that are neither the head, ``NEW``, nor waiting here: look them up."""
    waiting_ids = {w.event.id for w in queue}
    wanted = set()
    for w in queue:
        after = w.event.after
        if after in (None, NEW_AGGREGATE) or after in waiting_ids:
            continue
        if head is None or after != head.event_id:
            wanted.add(after)
    return {a for a in wanted if a is not None}


@dataclass(frozen=True, slots=True)
class Either:
    """Ids in ``base`` or in ``extra`` (decided before, or decided in this call)."""

    base: Container[str]
    extra: set[str]

    def __contains__(self, item: object) -> bool:
        return item in self.extra or item in self.base
