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
