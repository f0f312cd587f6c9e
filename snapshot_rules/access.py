"""Who may do what, declared with a domain: send each event type, read its aggregates and views.

A domain's ``Access`` names a rule per event type (and one for the rest) and one for reads. A
send rule sees the authenticated ``Actor``, the request's data and, when it asks for it
(``needs_state``), the aggregate's replayed state; it answers the data to store (it may fill a
field from the actor, e.g. the chat's ``sender_id``) or raises ``Forbidden`` with one reason.
A read rule sees the actor and the id of the aggregate the route reads: every route about one
aggregate passes its id (a domain query names the parameter that holds it,
``Query.aggregate_param``). ``None`` means a read of no single aggregate (a whole type's
subscription, a query declared ``aggregate_param=None``): a per-aggregate rule should refuse
it, never read it as "any aggregate". The actor comes from a verified token or a trusted proxy,
never from a body.

A send rule may also declare ``at_store``: the check the store repeats on the event as stored
(its data as the command side wrote it, the actor from ``metadata.actor``, the state at the
event's predecessor), so an event that reached the events topic without passing the door, or
was admitted on a stale view, is refused there. An event without an actor is refused by such a
rule (it was produced outside the HTTP door).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from topics.envelope import Actor
from topics.errors import Forbidden
from topics.jsonvalue import Json

State = Json
Data = Mapping[str, Json]


@dataclass(frozen=True, slots=True)
class SendRule:
    """``check(actor, data, state) -> data to store``; raises Forbidden to refuse."""

    check: Callable[[Actor, Data, State | None], Data]
    needs_state: bool = False
    """Ask for the aggregate's replayed state (a store read per request: only where needed)."""
    at_store: Callable[[Actor, Data, State | None], None] | None = None
    """``at_store(actor, stored data, state at its predecessor)``: raises Forbidden to refuse
    the event at the store; None: the store does not judge who sent it."""


ReadRule = Callable[[Actor, str | None], bool]
"""``(actor, aggregate id or None) -> allowed``; None: a read of no single aggregate."""


def _anyone(actor: Actor, data: Data, state: State | None) -> Data:
    return data


ANYONE = SendRule(_anyone)
"""Any authenticated principal may send it."""


def anyone_reads(actor: Actor, aggregate_id: str | None) -> bool:
    return True


def send_with_roles(*roles: str) -> SendRule:
    """Only a principal holding one of ``roles`` (from its token) may send it."""
    wanted = frozenset(roles)

    def check(actor: Actor, data: Data, state: State | None) -> Data:
        if not actor.has(*wanted):
            raise Forbidden(
                "role_required", f"{actor.principal} needs one of the roles {sorted(wanted)}."
            )
        return data

    return SendRule(check)


def read_with_roles(*roles: str) -> ReadRule:
    """Only a principal holding one of ``roles`` may read."""
    wanted = frozenset(roles)

    def check(actor: Actor, aggregate_id: str | None) -> bool:
        return actor.has(*wanted)

    return check


@dataclass(frozen=True, slots=True)
class Access:
    """A domain's access rules: ``send`` per event type (``default`` for the rest), ``read``."""

    send: Mapping[str, SendRule] = field(default_factory=dict)
    default: SendRule = ANYONE
    read: ReadRule = anyone_reads

    def rule(self, event_type: str) -> SendRule:
        return self.send.get(event_type, self.default)

    def admit(self, actor: Actor, event_type: str, data: Data, state: State | None) -> Data:
        """The data to store for ``actor`` sending ``event_type``; raises Forbidden."""
        return self.rule(event_type).check(actor, data, state)

    def judged_at_store(self, event_type: str) -> bool:
        """Whether the store judges who sent ``event_type`` (its rule declares ``at_store``)."""
        return self.rule(event_type).at_store is not None

    def judge_at_store(
        self, actor: Actor | None, event_type: str, data: Data, state: State | None
    ) -> None:
        """Raise Forbidden when the store must refuse ``event_type`` stored with ``data`` by
        ``actor`` (None: produced outside the HTTP door) after ``state``."""
        check = self.rule(event_type).at_store
        if check is None:
            return
        if actor is None:
            raise Forbidden(
                "no_actor",
                f"{event_type} carries no metadata.actor: it was produced outside the HTTP door, "
                "and who may send it depends on who asks; send it through the HTTP API.",
            )
        check(actor, data, state)

    def may_read(self, actor: Actor, aggregate_id: str | None) -> bool:
        return self.read(actor, aggregate_id)


OPEN = Access()
"""Any authenticated principal may send every event type and read everything."""
