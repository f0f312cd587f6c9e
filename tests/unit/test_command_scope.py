"""A command id belongs to its sender: its scope, and the event id derived from it."""

from __future__ import annotations

from topics.envelope import Actor, command_scope, derived_event_id


def test_without_an_actor_the_command_id_is_its_own_scope() -> None:
    assert command_scope("c-1", None) == "c-1"  # EVENTFLEET_AUTH=none, the commands topic
    assert derived_event_id("order", "o-1", command_scope("c-1", None)) == derived_event_id(
        "order", "o-1", "c-1"
    )


def test_two_principals_sending_one_command_id_send_two_commands() -> None:
    carol, bob = Actor("carol"), Actor("bob", ("admin",))
    assert command_scope("c-1", carol) != command_scope("c-1", bob)
    assert command_scope("c-1", carol) == command_scope("c-1", Actor("carol", ("other",)))
    ids = {
        derived_event_id("order", "o-1", command_scope("c-1", who)) for who in (carol, bob, None)
    }
    assert len(ids) == 3


def test_no_principal_and_command_pair_reads_as_another() -> None:
    """The principal enters as a fixed-width hash, never as text a command id could extend."""
    pairs = [("a", "b\x1fc"), ("a\x1fb", "c"), ("ab", "c"), ("a", "bc")]
    scopes = {command_scope(command, Actor(principal)) for principal, command in pairs}
    assert len(scopes) == len(pairs)
    assert "carol" not in command_scope("c", Actor("carol"))  # no user name in a Redis key


def test_the_dead_letter_desks_commands_are_the_fleets_whoever_replays() -> None:
    """Two operators replaying one fixed dead letter send one command: the second is told it
    is the first's duplicate, never stored twice."""
    from topics.envelope import DESK_COMMANDS

    replay = f"{DESK_COMMANDS}e-1"
    assert command_scope(replay, Actor("alice")) == command_scope(replay, Actor("bob")) == replay


def test_no_client_may_send_a_command_id_in_the_desks_name() -> None:
    import orjson
    import pytest

    from topics.errors import InvalidInput
    from workers.roles.command.requests import parse_request

    body = orjson.dumps({"type": "OrderPlaced", "data": {}, "command_id": "dlq-replay:e-1"})
    with pytest.raises(InvalidInput, match="dead-letter desk"):
        parse_request("order", "o-1", body, max_bytes=1000)
    assert parse_request("order", "o-1", body, max_bytes=1000, desk=True).command_id == (
        "dlq-replay:e-1"
    )
