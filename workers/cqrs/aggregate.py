"""The aggregate root: current state plus the events a command adds, decided by the domain's
rules."""

from __future__ import annotations

from collections.abc import Mapping

from snapshot_rules.domain import Domain
from snapshot_rules.replay import Folded, State
from topics.envelope import NEW_AGGREGATE, Event, Metadata, new_event
from topics.errors import TransitionRejected, WrongExpectedVersion
from topics.jsonvalue import Json


class StateRejected(TransitionRejected):
    """The domain's state validator refused the requested event in the aggregate's current state."""


class AggregateRoot:
    """One aggregate as stored (``original_version``) plus its new, unsaved events (``changes``).

    ``record`` applies the domain's rules to the current state, which already includes the
    changes recorded so far, so one command may add several events that build on each other.
    """

    def __init__(
        self,
        domain: Domain,
        aggregate_id: str,
        *,
        folded: Folded = Folded(None, 0),
        last_type: str | None = None,
        last_id: str | None = None,
    ) -> None:
        self.domain = domain
        self.aggregate_id = aggregate_id
        self._state = folded.state
        self._original_version = folded.version
        self._last_type = last_type
        self._last_id = last_id
        self._changes: list[Event] = []

    @property
    def state(self) -> State | None:
        return self._state

    @property
    def original_version(self) -> int:
        """The stored version this aggregate was loaded at: the expected version on save."""
        return self._original_version

    @property
    def version(self) -> int:
        return self._original_version + len(self._changes)

    @property
    def last_type(self) -> str | None:
        """The type of the newest event, recorded or stored; None for a new aggregate."""
        return self._last_type

    @property
    def changes(self) -> tuple[Event, ...]:
        return tuple(self._changes)

    def record(
        self,
        event_type: str,
        data: Mapping[str, Json],
        *,
        metadata: Metadata | None = None,
        event_id: str | None = None,
        data_checked: bool = False,
        expected_version: int | None = None,
    ) -> Event:
        """Validate the requested event on the current state; fold and keep it, or raise.

        Raises UnknownEventType / InvalidEventData / InvalidEnvelope for bad input,
        WrongExpectedVersion when ``expected_version`` is given and the aggregate (with the
        changes recorded so far) is at another version, and TransitionRejected
        (StateRejected for sync domains) when the rules refuse it.
        ``data_checked``: the caller checked the data against the schema already.
        """
        domain = self.domain
        if expected_version is not None and expected_version != self.version:
            raise WrongExpectedVersion(
                f"{domain.name} {self.aggregate_id}",
                expected=expected_version,
                current=self.version,
            )
        if not data_checked:
            domain.check_data(event_type, data)
        event = new_event(
            domain.name,
            self.aggregate_id,
            event_type,
            data,
            metadata=metadata,
            version=self.version + 1,
            id=event_id,
            after=self._last_id or NEW_AGGREGATE,
            schema_version=domain.schema_version(event_type),
            expected_version=expected_version,
        )
        # Declared transitions first (after=ANY passes), then the state's own rules.
        domain.check_transition(self.aggregate_id, self._last_type, event_type)
        if domain.validator is not None:
            reason = domain.validator(self._state, event)
            if reason is not None:
                raise StateRejected(
                    f"{domain.name} {self.aggregate_id} cannot take {event_type}: {reason}.",
                    current=self._last_type,
                    allowed=[],
                )
        self._state = domain.reducer(self._state, event)
        self._last_type = event_type
        self._last_id = event.id
        self._changes.append(event)
        return event

    def mark_saved(self) -> tuple[Event, ...]:
        """The store accepted the changes: they become the original version. Returns them."""
        saved = tuple(self._changes)
        self._original_version += len(saved)
        self._changes.clear()
        return saved
