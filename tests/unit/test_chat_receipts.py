"""Read receipts in the chat room: each member's last read message and unread count, kept by
the state and the view alike, never moving backwards."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapshot_rules.replay import State
from tests.unit.test_chat_room import chat, deleted, sent
from topics.envelope import Event
from topics.errors import InvalidEventData, TransitionRejected
from workers.examples.domains.chat_room import CHAT_ROOM, apply_chat_view, reduce_chat_room


def read(reader: str, up_to: str, version: int) -> Event:
    return chat("MessageRead", version, reader_id=reader, up_to_message_id=up_to)


def fold(events: list[Event]) -> State:
    state: State | None = None
    for event in events:
        state = reduce_chat_room(state, event)
    assert state is not None
    return state


def reads_of(state: State) -> dict[str, Any]:
    return dict(state.get("reads", {}))


def test_a_receipt_records_the_last_read_message_and_counts_what_others_sent_after() -> None:
    state = fold([
        sent("m1", "ann", "hi", 1), sent("m2", "bob", "yo", 2), read("ann", "m1", 3),
        sent("m3", "bob", "there?", 4), sent("m4", "ann", "yes", 5),
    ])  # fmt: skip
    assert reads_of(state) == {"ann": {"up_to_message_id": "m1", "up_to_version": 1, "unread": 2}}
    assert state["counts"]["read"] == 1


def test_a_receipt_never_moves_backwards_and_a_deleted_message_is_no_longer_unread() -> None:
    state = fold([
        sent("m1", "ann", "a", 1), sent("m2", "ann", "b", 2), sent("m3", "ann", "c", 3),
        read("bob", "m2", 4), read("bob", "m1", 5),  # backwards: ignored
    ])  # fmt: skip
    assert reads_of(state)["bob"] == {"up_to_message_id": "m2", "up_to_version": 2, "unread": 1}
    assert state["counts"]["ignored"] == 1
    state = reduce_chat_room(state, deleted("m3", "ann", 6))
    assert reads_of(state)["bob"]["unread"] == 0


def test_a_receipt_for_a_message_the_window_does_not_hold_changes_nothing() -> None:
    before = fold([sent("m1", "ann", "a", 1)])
    after = reduce_chat_room(before, read("bob", "nope", 2))
    assert "reads" not in after and after["counts"]["outside_window"] == 1


def test_a_room_without_receipts_keeps_its_shape() -> None:
    assert "reads" not in fold([sent("m1", "ann", "a", 1), sent("m2", "bob", "b", 2)])


def test_a_receipt_may_not_open_a_room_and_its_fields_are_checked() -> None:
    with pytest.raises(TransitionRejected):
        CHAT_ROOM.check_transition("r1", None, "MessageRead")
    CHAT_ROOM.check_transition("r1", "MessageRead", "MessageSent")
    CHAT_ROOM.check_data("MessageRead", {"reader_id": "ann", "up_to_message_id": "m1"})
    with pytest.raises(InvalidEventData):
        CHAT_ROOM.check_data("MessageRead", {"reader_id": "ann"})
    with pytest.raises(InvalidEventData):
        CHAT_ROOM.check_data("MessageRead", {"reader_id": "ann", "up_to_message_id": "m1", "x": 1})


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["ann", "bob"]), st.integers(1, 8)), max_size=12))
def test_receipts_only_move_forward_and_the_view_agrees_with_replay(
    receipts: list[tuple[str, int]],
) -> None:
    events = [sent(f"m{i}", "cid", "x", i) for i in range(1, 9)]
    version = len(events)
    for reader, up_to in receipts:
        version += 1
        events.append(read(reader, f"m{up_to}", version))
    state: State | None = None
    view: Any = None
    last: dict[str, int] = {}
    for event in events:
        state = reduce_chat_room(state, event)
        view = apply_chat_view(view, event)
        for reader, receipt in reads_of(state).items():
            assert receipt["up_to_version"] >= last.get(reader, 0)
            assert receipt["unread"] == 8 - receipt["up_to_version"]
            last[reader] = receipt["up_to_version"]
    assert state is not None
    assert reads_of(view) == reads_of(state)
    for reader, _ in receipts:
        assert last[reader] == max(u for r, u in receipts if r == reader)
