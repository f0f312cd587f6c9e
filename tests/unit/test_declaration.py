"""Declaring a domain: optional transition checks (after=ANY), and every mistake named at start."""

from __future__ import annotations

from typing import Any

import pytest

from snapshot_rules.domain import ANY, NEW, Domain, Mode, Route, event
from snapshot_rules.replay import State
from snapshot_rules.rules import every, on
from snapshot_rules.schema import Text, fields
from topics.envelope import Event, new_event
from topics.errors import InvalidEventData, TransitionRejected
from workers.cqrs.aggregate import AggregateRoot, StateRejected
from workers.examples.domains.account import ACCOUNT


def keep(state: State | None, e: Event) -> State:
    return {"last": e.type}


def notes(**events: Any) -> Domain:
    return Domain(name="notebook", events=events, reducer=keep)


def test_an_event_without_after_is_not_checked_against_its_predecessor() -> None:
    domain = notes(NoteWritten=event(fields(text=Text())))
    assert domain.spec("NoteWritten").after == frozenset({ANY})
    assert not domain.spec("NoteWritten").checked
    domain.check_transition("n-1", None, "NoteWritten")  # a new aggregate
    domain.check_transition("n-1", "NoteWritten", "NoteWritten")


def test_after_any_accepts_anything_while_a_list_still_checks() -> None:
    domain = notes(
        Opened=event(after=[NEW]),
        Tagged=event(after=ANY),
        Closed=event(after=["Opened", "Tagged"]),
    )
    for current in (None, "Opened", "Closed", "Tagged"):
        domain.check_transition("n-1", current, "Tagged")
    with pytest.raises(TransitionRejected, match="Closed may not follow nothing"):
        domain.check_transition("n-1", None, "Closed")
    with pytest.raises(TransitionRejected, match="Opened may not follow Tagged"):
        domain.check_transition("n-1", "Tagged", "Opened")


def test_an_empty_after_list_fails_at_declaration_naming_the_fix() -> None:
    with pytest.raises(ValueError, match=r"notebook\.Closed has an empty after list.*after=ANY"):
        notes(Opened=event(after=[NEW]), Closed=event(after=[]))


def test_a_typo_in_after_names_the_closest_event_type() -> None:
    with pytest.raises(ValueError, match=r"may follow 'Opend'.*did you mean 'Opened'\?"):
        notes(Opened=event(after=[NEW]), Closed=event(after=["Opend"]))


def test_a_name_nothing_resembles_is_still_refused() -> None:
    with pytest.raises(ValueError, match=r"may follow 'xyz', which is not an event type"):
        notes(Opened=event(after=[NEW, "xyz"]))


def test_after_as_a_bare_string_is_refused_with_the_list_to_write() -> None:
    with pytest.raises(
        ValueError, match=r"after='Opened' is a single string; write after=\['Opened'\]"
    ):
        event(after="Opened")


def test_any_mixed_with_names_is_refused() -> None:
    with pytest.raises(ValueError, match="write after=ANY alone"):
        notes(Opened=event(after=[ANY, NEW]))


def test_a_domain_without_event_types_is_refused() -> None:
    with pytest.raises(ValueError, match="declares no event types"):
        notes()


def test_a_snapshot_rule_naming_an_unknown_type_is_refused() -> None:
    with pytest.raises(ValueError, match=r"snapshot rule names 'Close'.*did you mean 'Closed'"):
        Domain(
            name="notebook",
            events={"Opened": event(), "Closed": event()},
            reducer=keep,
            snapshot_rule=every(10) | on({"Close"}),
        )


def test_a_route_naming_an_unknown_type_is_refused_unless_derived() -> None:
    with pytest.raises(ValueError, match=r"route to 'notes' names 'Opend'"):
        Domain(
            name="notebook",
            events={"Opened": event()},
            reducer=keep,
            routes=(Route("notes", frozenset({"Opend"})),),
        )
    derived = Domain(
        name="notebook",
        events={"Opened": event()},
        reducer=keep,
        routes=(Route("notes", frozenset({"NoteIndexed"})),),
        derived_types=frozenset({"NoteIndexed"}),
    )
    assert derived.routes[0].matches("NoteIndexed")


def test_a_sync_domain_needs_no_validator_and_still_checks_declared_transitions() -> None:
    ledger = Domain(
        name="ledger",
        mode=Mode.SYNC,
        events={"Opened": event(after=[NEW]), "Posted": event(fields(amount=Text()))},
        reducer=keep,
    )
    root = AggregateRoot(ledger, "l-1")
    root.record("Opened", {})
    root.record("Posted", {"amount": "3"})
    with pytest.raises(TransitionRejected, match="Opened may not follow Posted"):
        root.record("Opened", {})
    assert [e.type for e in root.changes] == ["Opened", "Posted"]


def test_a_sync_domain_checks_transitions_before_its_validator() -> None:
    seen: list[str] = []

    def validate(state: State | None, requested: Event) -> str | None:
        seen.append(requested.type)
        return "closed" if (state or {}).get("last") == "Closed" else None

    desk = Domain(
        name="desk",
        mode=Mode.SYNC,
        validator=validate,
        events={"Opened": event(after=[NEW]), "Closed": event(), "Used": event()},
        reducer=keep,
    )
    root = AggregateRoot(desk, "d-1")
    root.record("Opened", {})
    with pytest.raises(TransitionRejected, match="Opened may not follow Opened"):
        root.record("Opened", {})
    assert seen == ["Opened"]  # the second Opened never reached the validator
    root.record("Closed", {})
    with pytest.raises(StateRejected, match="desk d-1 cannot take Used: closed"):
        root.record("Used", {})


def test_the_example_sync_domain_still_validates_on_state() -> None:
    root = AggregateRoot(ACCOUNT, "a-1")
    with pytest.raises(StateRejected, match="has not been opened"):
        root.record("MoneyDeposited", {"amount": 5})
    root.record("AccountOpened", {"owner": "ada"})
    assert root.record("MoneyDeposited", {"amount": 5}).version == 2


def test_a_validator_that_is_not_callable_is_refused() -> None:
    with pytest.raises(ValueError, match="validator must be a function"):
        Domain(name="x", events={"A": event()}, reducer=keep, validator="nope")  # type: ignore[arg-type]


def test_an_unchecked_event_still_has_its_data_checked() -> None:
    domain = notes(NoteWritten=event(fields(closed=True, text=Text(max_length=5))))
    domain.check_data("NoteWritten", {"text": "hi"})
    with pytest.raises(InvalidEventData, match=r"data\.text must be at most 5 characters"):
        domain.check_data("NoteWritten", {"text": "too long"})
    assert new_event("notebook", "n", "NoteWritten", {"text": "hi"}).schema_version == 1
