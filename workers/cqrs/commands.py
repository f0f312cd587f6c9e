"""Commands: typed, immutable requests for a change of one aggregate."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from snapshot_rules.domain import Domain
from topics.envelope import Metadata
from topics.jsonvalue import Json


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    """An intent addressed to one aggregate; subclasses add the fields the intent needs.

    ``metadata`` (client, command, correlation and causation ids) is copied onto every
    event the command produces, so the events can be traced back to it.
    """

    aggregate_id: str
    metadata: Metadata = field(default_factory=Metadata)

    @property
    def name(self) -> str:
        return type(self).__name__


@dataclass(frozen=True, slots=True, kw_only=True)
class AppendEvent(Command):
    """The generic command of the sync path: "append ``event_type`` with ``data``" to a domain.

    The domain's schema and state validator decide; typed commands (see
    ``workers.examples.cqrs.account``) are the same thing with the event spelled out by the code.
    """

    domain: Domain
    event_type: str
    data: Mapping[str, Json]
    event_id: str | None = None
    """Derived from the request's command id: a retry of an applied command finds it stored."""
    expected_version: int | None = None
    """Append only at this version (0: a new aggregate); None: at whatever version it is."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NamedCommand(Command):
    """A command known by its name and a payload (``new_command``), not by its class."""

    command: str
    payload: Mapping[str, Json] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.command


def new_command(
    name: str,
    aggregate_id: str,
    payload: Mapping[str, Json] | None = None,
    *,
    metadata: Metadata | None = None,
) -> NamedCommand:
    """``new_command("CreateUser", "user123", {"name": ..., "email": ...})``."""
    return NamedCommand(
        aggregate_id=aggregate_id,
        command=name,
        payload=dict(payload or {}),
        metadata=metadata or Metadata(),
    )
