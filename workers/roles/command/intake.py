"""A request taken in once: admitted by the domain's access rule, checked, given its ids, sealed.

What comes out is a ``Command``: its domain, its event type's spec and its event id resolved
once, its personal fields sealed, so neither mode looks anything up again.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from snapshot_rules.domain import Domain, EventSpec
from topics.envelope import Actor, Metadata, command_scope, derived_event_id, new_event_id
from topics.frozen import slot_init
from workers import tracing
from workers.ports import AggregateRef
from workers.roles.command.ledger import new_token
from workers.roles.command.requests import CommandRequest
from workers.roles.personal import Shredder
from workers.roles.state import StateLoader


@slot_init
@dataclass(frozen=True, slots=True)
class Command:
    """One request with everything resolved once: its domain, its event type's spec, its ids."""

    request: CommandRequest
    domain: Domain
    spec: EventSpec
    event_id: str
    token: str
    key: str
    """The aggregate's key (``<type>:<id>``): what the marker and the memory key it by."""
    memory_id: str | None
    """The command id in its sender's scope: what the memory keys and the event id derives
    from, so another principal's equal command id is another command."""

    @property
    def ref(self) -> AggregateRef:
        return (self.domain.name, self.request.aggregate_id)

    @property
    def command_id(self) -> str | None:
        """The command id as the client sent it (answers and metadata carry it)."""
        return self.request.command_id

    def metadata(self) -> Metadata:
        """Who asked; a request without a correlation id starts a conversation named by its
        command id, or else by its event."""
        r = self.request
        return Metadata(
            client_id=r.client_id,
            command_id=r.command_id,
            correlation_id=r.correlation_id or r.command_id or self.event_id,
            causation_id=r.causation_id,
            actor=r.actor,
            trace_id=tracing.current_trace_id(),
        )


class Intake:
    """Turns a request for a domain into a ``Command``, before anything is marked or written."""

    def __init__(
        self, *, loader: StateLoader | None = None, shredder: Shredder | None = None
    ) -> None:
        self._loader = loader
        self._shredder = shredder

    async def command(self, domain: Domain, request: CommandRequest) -> Command:
        """Raises UnknownEventType (422) before Forbidden (403) before InvalidEventData (422)."""
        spec = domain.spec(request.type)
        if request.actor is not None:
            request = await self._admitted(domain, request, request.actor)
        domain.check_data(request.type, request.data)
        if request.command_id is None:
            scoped, event_id = None, new_event_id()
        else:
            scoped = command_scope(request.command_id, request.actor)
            event_id = derived_event_id(domain.name, request.aggregate_id, scoped)
        command = Command(request, domain, spec, event_id, new_token(), request.key, scoped)
        return await self._sealed(command)

    async def _admitted(
        self, domain: Domain, request: CommandRequest, actor: Actor
    ) -> CommandRequest:
        """The request as the domain's access rule admits it for ``actor`` (data possibly
        filled from the actor); raises Forbidden before anything is marked or produced."""
        rule = domain.access.rule(request.type)
        state = None
        if rule.needs_state:
            if self._loader is None:
                raise RuntimeError(f"{domain.name}: an access rule needs state and no loader")
            folded = await self._loader.latest(domain, request.aggregate_id, trigger="validation")
            state = folded.state if folded.version else None
        data = rule.check(actor, request.data, state)
        return request if data is request.data else replace(request, data=data)

    async def _sealed(self, c: Command) -> Command:
        """The command with its personal fields sealed: nothing after this sees the plaintext
        (checked above), not the topics, the store, the replies nor the dead letters."""
        if self._shredder is None or c.domain.personal is None:
            return c
        data = await self._shredder.seal(c.domain, c.request.aggregate_id, c.request.data)
        if data is c.request.data:
            return c
        r = c.request  # built directly: dataclasses.replace and copy cost ~10 µs here
        request = CommandRequest(
            r.aggregate_type,
            r.aggregate_id,
            r.type,
            data,
            client_id=r.client_id,
            command_id=r.command_id,
            correlation_id=r.correlation_id,
            causation_id=r.causation_id,
            actor=r.actor,
            expected_version=r.expected_version,
        )
        return Command(request, c.domain, c.spec, c.event_id, c.token, c.key, c.memory_id)
