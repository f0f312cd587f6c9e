"""Process managers, declared beside the domains: stored events start, advance and end an
instance (one per key, e.g. per order id), which sends commands and sets deadlines.

A declaration is pure data and pure functions, testable without a service::

    ProcessManager(
        name="order_lifecycle",
        starts_on={"order": ["OrderPlaced"]},
        advances_on={"order": ["OrderPaid"]},
        ends_on={"order": ["OrderCancelled", "OrderDelivered"]},
        key=lambda event: event.aggregate_id,
        react=react,               # (state | None, event) -> Reaction
        on_deadline=on_deadline,   # (state, Due) -> Reaction
        sends={"order": ["OrderCancelled"], "shipment": ["ShipmentRequested"]},
        roles=("fulfilment",),     # the roles of its principal, pm:order_lifecycle
    )

``react`` sees every event of the types it names, in the order of each aggregate's versions, and
returns a ``Reaction``: the instance's next state, the commands to send (``Send``), the
deadlines to set (``SetDeadline``, due ``after_s`` after the trigger's time: the event's
``occurred_at``, or the due time of the deadline that fired) and to cancel (by name), and
whether the instance is done. An ``ends_on`` event ends it whatever the reaction says. The
runtime (``workers.roles.process``) runs the reactions: it stores each instance's state with
the commands and deadlines it decided in one write, sends the commands through the command
door under the principal ``pm:<name>`` with ids derived from their trigger, and fires deadlines.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from snapshot_rules.declaration import did_you_mean
from snapshot_rules.domain import Domains
from topics.envelope import AGGREGATE_ID_RE, AGGREGATE_TYPE_RE, Actor, Event, validate_data
from topics.errors import InvalidEnvelope, NotFound
from topics.jsonvalue import Json, JsonObject

__all__ = [
    "PRINCIPAL_PREFIX",
    "Due",
    "ProcessManager",
    "Processes",
    "Reaction",
    "Send",
    "SetDeadline",
    "check_reaction",
]

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}\Z")
DEADLINE_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}\Z")
PRINCIPAL_PREFIX = "pm:"
"""A process manager's principal is ``pm:<name>``."""
MAX_SENDS = 100
"""Commands one reaction may send."""
MAX_DEADLINE_S = 366 * 86_400.0
"""The furthest a deadline may be set: a year (and a day)."""

State = JsonObject
Phases = Mapping[str, Collection[str]]
"""Aggregate type -> its event types, e.g. ``{"order": ["OrderPlaced"]}``."""


@dataclass(frozen=True, slots=True)
class Send:
    """A command the instance sends: append ``type`` with ``data`` to one aggregate."""

    aggregate_type: str
    aggregate_id: str
    type: str
    data: Mapping[str, Json] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SetDeadline:
    """Set deadline ``name``, due ``after_s`` seconds after the trigger's time (an event's
    ``occurred_at``; a deadline's due time); setting a name again replaces its pending one."""

    name: str
    after_s: float
    data: Mapping[str, Json] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Due:
    """A deadline that came due, as ``on_deadline`` sees it."""

    name: str
    id: str
    due_at: datetime
    data: Mapping[str, Json] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Reaction:
    """What an instance decided on one event or deadline (lists are taken as tuples)."""

    state: State
    send: Sequence[Send] = ()
    set_deadlines: Sequence[SetDeadline] = ()
    cancel_deadlines: Sequence[str] = ()
    done: bool = False

    def __post_init__(self) -> None:
        for name in ("send", "set_deadlines", "cancel_deadlines"):
            object.__setattr__(self, name, tuple(getattr(self, name)))


React = Callable[[State | None, Event], Reaction]
OnDeadline = Callable[[State, Due], Reaction]
Key = Callable[[Event], str]


def _pairs(phases: Phases, what: str, manager: str) -> frozenset[tuple[str, str]]:
    if not isinstance(phases, Mapping):
        raise ValueError(
            f"process {manager!r}: {what} must map aggregate types to event types, e.g. "
            f"{what}={{'order': ['OrderPlaced']}}."
        )
    pairs: set[tuple[str, str]] = set()
    for aggregate_type, types in phases.items():
        if isinstance(types, str):
            raise ValueError(
                f"process {manager!r}: {what}[{aggregate_type!r}] is a single string; write a "
                f"list: [{types!r}]."
            )
        pairs.update((aggregate_type, t) for t in types)
    return frozenset(pairs)


@dataclass(frozen=True, slots=True)
class ProcessManager:
    """One process manager: its triggers, how an instance is keyed, and its pure reactions."""

    name: str
    starts_on: Phases
    key: Key
    react: React
    advances_on: Phases = field(default_factory=dict)
    ends_on: Phases = field(default_factory=dict)
    on_deadline: OnDeadline | None = None
    sends: Phases = field(default_factory=dict)
    """Every (aggregate type, event type) it may send; a reaction sending another is stuck."""
    roles: tuple[str, ...] = ()
    """The roles its principal ``pm:<name>`` holds before the domains' access rules."""
    _phase_of: Mapping[tuple[str, str], str] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not NAME_RE.match(self.name):
            raise ValueError(
                f"process name {self.name!r} must match {NAME_RE.pattern} (lower case, digits, "
                "underscores), e.g. 'order_lifecycle'."
            )
        for name in ("key", "react"):
            if not callable(getattr(self, name)):
                raise ValueError(f"process {self.name!r}: {name} must be a function.")
        if self.on_deadline is not None and not callable(self.on_deadline):
            raise ValueError(f"process {self.name!r}: on_deadline must be a function or None.")
        if not self.triggers("start"):
            raise ValueError(
                f"process {self.name!r} has no starts_on event type: name the stored events "
                "that start an instance, e.g. starts_on={'order': ['OrderPlaced']}."
            )
        self._check_phases()
        self.commands()  # a malformed sends= fails here
        if isinstance(self.roles, str) or not all(isinstance(r, str) and r for r in self.roles):
            raise ValueError(f"process {self.name!r}: roles must be a tuple of role names.")

    def _check_phases(self) -> None:
        seen: dict[tuple[str, str], str] = {}
        for phase in ("start", "advance", "end"):
            for pair in self.triggers(phase):
                if pair in seen:
                    raise ValueError(
                        f"process {self.name!r}: {pair[0]}.{pair[1]} is in both "
                        f"{seen[pair]}s_on and {phase}s_on; name each event type in one of "
                        "starts_on, advances_on and ends_on."
                    )
                seen[pair] = phase
        object.__setattr__(self, "_phase_of", seen)  # phase() is one lookup per event

    def triggers(self, phase: str) -> frozenset[tuple[str, str]]:
        """The (aggregate type, event type) pairs of ``phase``: start, advance or end."""
        phases = {"start": self.starts_on, "advance": self.advances_on, "end": self.ends_on}
        return _pairs(phases[phase], f"{phase}s_on", self.name)

    def commands(self) -> frozenset[tuple[str, str]]:
        """The (aggregate type, event type) pairs it may send."""
        return _pairs(self.sends, "sends", self.name)

    def phase(self, event: Event) -> str | None:
        """start, advance or end for an event it reacts to; None for any other."""
        return self._phase_of.get((event.aggregate_type, event.type))

    @property
    def principal(self) -> str:
        return f"{PRINCIPAL_PREFIX}{self.name}"

    def actor(self) -> Actor:
        """Who its commands are sent as: ``pm:<name>`` with its declared roles."""
        return Actor(self.principal, tuple(self.roles))

    def key_of(self, event: Event) -> str:
        """The instance key of ``event``; ValueError naming the event for a key that cannot be
        one (the key function raised, or returned no string of AGGREGATE_ID_RE's form)."""
        try:
            key = self.key(event)
        except Exception as e:
            raise ValueError(f"{self.name}: key({event.type} {event.id}) raised {e!r}") from e
        if not isinstance(key, str) or not AGGREGATE_ID_RE.match(key):
            raise ValueError(
                f"{self.name}: key({event.type} {event.id}) returned {key!r}; an instance key "
                f"must be a string matching {AGGREGATE_ID_RE.pattern}."
            )
        return key


def check_reaction(manager: ProcessManager, reaction: object) -> Reaction:
    """``reaction`` if the runtime can carry it out; ValueError naming the first problem: not a
    Reaction, a state that is no JSON object, an undeclared command, a bad deadline."""
    where = f"process {manager.name}"
    if not isinstance(reaction, Reaction):
        raise ValueError(f"{where}: a reaction must return Reaction(...), not {reaction!r:.80}.")
    if len(reaction.send) > MAX_SENDS:
        raise ValueError(f"{where}: a reaction sends at most {MAX_SENDS} commands.")
    allowed = manager.commands()
    for send in reaction.send:
        _check_send(where, send, allowed)
    for deadline in reaction.set_deadlines:
        _check_deadline(where, deadline)
    if reaction.set_deadlines and manager.on_deadline is None:
        raise ValueError(
            f"{where} sets deadline {reaction.set_deadlines[0].name!r} but declares no "
            "on_deadline to react when it comes due; declare on_deadline=..."
        )
    try:
        validate_data(reaction.state, "state")
        for send in reaction.send:
            validate_data(send.data, f"{send.type}.data")
        for deadline in reaction.set_deadlines:
            validate_data(deadline.data, f"deadline {deadline.name}.data")
    except InvalidEnvelope as e:
        raise ValueError(f"{where}: {e}") from e
    for name in reaction.cancel_deadlines:
        if not isinstance(name, str) or not DEADLINE_NAME_RE.match(name):
            raise ValueError(f"{where}: cancel_deadlines names {name!r}, no deadline name.")
    return reaction


def _check_send(where: str, send: object, allowed: frozenset[tuple[str, str]]) -> None:
    if not isinstance(send, Send):
        raise ValueError(f"{where}: send holds {send!r:.80}, not a Send(...).")
    if (send.aggregate_type, send.type) not in allowed:
        raise ValueError(
            f"{where} may not send {send.aggregate_type}.{send.type}: it is not in its sends= "
            "declaration; add it there."
        )
    if not isinstance(send.aggregate_id, str) or not AGGREGATE_ID_RE.match(send.aggregate_id):
        raise ValueError(
            f"{where}: Send to {send.aggregate_type} {send.aggregate_id!r}: the aggregate id "
            f"must match {AGGREGATE_ID_RE.pattern}."
        )


def _check_deadline(where: str, deadline: object) -> None:
    if not isinstance(deadline, SetDeadline):
        raise ValueError(f"{where}: set_deadlines holds {deadline!r:.80}, not a SetDeadline(...).")
    if not isinstance(deadline.name, str) or not DEADLINE_NAME_RE.match(deadline.name):
        raise ValueError(
            f"{where}: deadline name {deadline.name!r} must match {DEADLINE_NAME_RE.pattern}."
        )
    after = deadline.after_s
    if isinstance(after, bool) or not isinstance(after, int | float):
        raise ValueError(f"{where}: deadline {deadline.name} after_s must be a number of seconds.")
    if not math.isfinite(after) or not 0 <= after <= MAX_DEADLINE_S:
        raise ValueError(
            f"{where}: deadline {deadline.name} after_s={after!r}; give 0 to {MAX_DEADLINE_S:.0f} "
            "seconds."
        )


class Processes:
    """The enabled process managers by name, checked against the enabled domains."""

    def __init__(self, managers: Iterable[ProcessManager] = ()) -> None:
        self._by_name: dict[str, ProcessManager] = {}
        self._by_trigger: dict[tuple[str, str], list[ProcessManager]] = {}
        for manager in managers:
            if not isinstance(manager, ProcessManager):
                raise ValueError(f"Processes(...) takes ProcessManager(...)s, not {manager!r:.80}")
            if manager.name in self._by_name:
                raise ValueError(f"process {manager.name!r} is declared twice")
            self._by_name[manager.name] = manager
            for phase in ("start", "advance", "end"):
                for pair in manager.triggers(phase):
                    self._by_trigger.setdefault(pair, []).append(manager)

    def __iter__(self) -> Iterator[ProcessManager]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def get(self, name: str) -> ProcessManager:
        try:
            return self._by_name[name]
        except KeyError:
            raise NotFound(
                f"no process manager is named {name!r}{did_you_mean(name, self._by_name)}; "
                f"enabled: {', '.join(self.names()) or 'none'} (EVENTFLEET_PROCESSES)."
            ) from None

    def interested(self, event: Event) -> list[ProcessManager]:
        """The managers that react to ``event``'s (aggregate type, event type)."""
        return self._by_trigger.get((event.aggregate_type, event.type), [])

    def check(self, domains: Domains) -> None:
        """ValueError for the first type a manager names that no enabled domain declares."""
        for manager in self:
            for what, pairs in (
                ("starts_on/advances_on/ends_on", _all_triggers(manager)),
                ("sends", manager.commands()),
            ):
                for aggregate_type, event_type in sorted(pairs):
                    _check_type(manager.name, what, domains, aggregate_type, event_type)


def _all_triggers(manager: ProcessManager) -> frozenset[tuple[str, str]]:
    return manager.triggers("start") | manager.triggers("advance") | manager.triggers("end")


def _check_type(
    manager: str, what: str, domains: Domains, aggregate_type: str, event_type: str
) -> None:
    if not AGGREGATE_TYPE_RE.match(aggregate_type) or aggregate_type not in domains:
        raise ValueError(
            f"process {manager!r}: {what} names aggregate type {aggregate_type!r}"
            f"{did_you_mean(aggregate_type, domains.names())}, which no enabled domain is; "
            f"enabled: {', '.join(domains.names())}."
        )
    events = domains.get(aggregate_type).events
    if event_type not in events:
        raise ValueError(
            f"process {manager!r}: {what} names {aggregate_type}.{event_type}"
            f"{did_you_mean(event_type, events)}, which is not one of its event types."
        )
