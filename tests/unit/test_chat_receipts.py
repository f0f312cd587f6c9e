"""Read receipts in the chat room: each member's last read message and unread count, kept by
the state and the view alike, never moving backwards, bounded by a declared cap of members (the
least recently read leaves first), unread counts right under any order of events."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapshot_rules.replay import State
from tests.chat_events import chat, deleted, edited, sent
from topics.envelope import Event
from topics.errors import InvalidEventData, TransitionRejected
from workers.examples.domains.chat_room import (
    CHAT_ROOM,
    apply_chat_view,
    chat_room_domain,
    reduce_chat_room,
    unread_counts,
)


def read(reader: str, up_to: str, version: int) -> Event:
    return chat("MessageRead", version, reader_id=reader, up_to_message_id=up_to)


def fold(events: list[Event]) -> State:
    state: State | None = None
    for event in events:
        state = reduce_chat_room(state, event)
    assert state is not None
    return state


def reads_of(state: State) -> dict[str, Any]:
    """Each kept reader's receipt with its unread count, as the room query answers them."""
    return unread_counts(state)


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
    state = fold([sent("m1", "ann", "a", 1), sent("m2", "bob", "b", 2)])
    assert "reads" not in state and "readers_evicted" not in state


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


def fold_with(rules_readers: int, events: list[Event], *, window: int = 100) -> State:
    reducer = chat_room_domain(readers=rules_readers, window=window).reducer
    state: State | None = None
    for event in events:
        state = reducer(state, event)
    assert state is not None
    return state


def test_past_the_cap_the_least_recently_read_member_leaves_and_is_counted() -> None:
    events = [sent(f"m{i}", "ann", "x", i) for i in range(1, 6)]
    events += [read("r1", "m1", 6), read("r2", "m1", 7), read("r3", "m1", 8)]
    events += [read("r1", "m2", 9)]  # r1 reads again: now the most recently read
    events += [read("r4", "m1", 10)]  # a fourth member: r2, the least recently read, leaves
    state = fold_with(3, events)
    assert list(state["reads"]) == ["r3", "r1", "r4"]
    assert state["readers_evicted"] == 1
    events += [read("r2", "m3", 11)]  # an evicted member comes back as a new one
    state = fold_with(3, events)
    assert list(state["reads"]) == ["r1", "r4", "r2"]
    assert state["readers_evicted"] == 2
    assert reads_of(state)["r2"] == {"up_to_message_id": "m3", "up_to_version": 3, "unread": 2}


def test_an_ignored_receipt_does_not_make_its_member_recent() -> None:
    events = [sent("m1", "ann", "x", 1), sent("m2", "ann", "x", 2)]
    events += [read("r1", "m2", 3), read("r2", "m2", 4), read("r1", "m1", 5), read("r3", "m2", 6)]
    state = fold_with(2, events)
    assert list(state["reads"]) == ["r2", "r3"]
    assert state["counts"]["ignored"] == 1


def test_ten_thousand_members_keep_the_state_within_the_cap() -> None:
    events = [sent(f"m{i}", f"s{i % 7}", "x" * 40, i) for i in range(1, 101)]
    version = len(events)
    for reader in range(10_000):
        version += 1
        events.append(read(f"reader-{reader:05d}", f"m{1 + reader % 100}", version))
    state = fold_with(1000, events)
    assert len(state["reads"]) == 1000 and state["readers_evicted"] == 9000
    assert next(iter(state["reads"])) == "reader-09000"
    assert len(orjson.dumps(state)) < 200_000


def test_bad_reader_caps_are_refused_with_the_range_named() -> None:
    for bad in (0, -1, 10_001, 2.5, True, "100"):
        with pytest.raises(ValueError, match="readers must be a whole number from 1 to 10000"):
            chat_room_domain(readers=bad)  # type: ignore[arg-type]  # bad input on purpose


def old_state(readers: int) -> State:
    """A state as stored before receipts were bounded: entries in first-receipt order, each with
    its stored ``unread``, no ``readers_evicted``."""
    messages = [{"message_id": f"m{i}", "sender_id": "ann", "content": "x", "sent_at": "t",
                 "edited": False, "edited_at": None, "version": i} for i in range(1, 4)]  # fmt: skip
    reads = {f"r{i}": {"up_to_message_id": f"m{1 + i % 3}", "up_to_version": 1 + i % 3,
                       "unread": 2 - i % 3} for i in range(readers)}  # fmt: skip
    counts = {"sent": 3, "edited": 0, "deleted": 0, "ignored": 0, "outside_window": 0}
    return {"messages": messages, "horizon": 1, "counts": counts | {"read": readers},
            "reads": reads}  # fmt: skip


def test_an_old_snapshot_still_folds_cut_to_the_cap_by_how_far_each_read() -> None:
    state = old_state(7)
    after = chat_room_domain(readers=4).reducer(state, sent("m4", "bob", "new", 4))
    # ordered by the version read (r0, r3, r6 read m1; r1, r4 m2; r2, r5 m3): the first 3 leave
    assert list(after["reads"]) == ["r1", "r4", "r2", "r5"]
    assert after["readers_evicted"] == 3
    assert all(
        set(read) == {"up_to_message_id", "up_to_version"} for read in after["reads"].values()
    )
    assert reads_of(after)["r2"] == {"up_to_message_id": "m3", "up_to_version": 3, "unread": 1}
    assert reads_of(after)["r1"]["unread"] == 2
    assert state["reads"]["r0"]["unread"] == 2  # the stored state itself is not changed


def test_an_old_snapshot_under_the_cap_keeps_every_member_and_the_view_reads_it_too() -> None:
    state = old_state(5)
    replayed = reduce_chat_room(state, read("r9", "m3", 4))
    viewed = apply_chat_view(state, read("r9", "m3", 4))
    assert sorted(replayed["reads"]) == ["r0", "r1", "r2", "r3", "r4", "r9"]
    assert replayed["readers_evicted"] == 0 and list(replayed["reads"])[-1] == "r9"
    assert reads_of(viewed) == reads_of(replayed)


Op = tuple[str, int, int]
"""(kind, who, which): send by member ``who``; edit or delete message ``which`` as ``who``; a
receipt by ``who`` up to message ``which``."""

KINDS = st.sampled_from(["send", "send", "edit", "delete", "read", "read"])
OPS = st.lists(st.tuples(KINDS, st.integers(0, 5), st.integers(0, 14)), max_size=60)


def naive(ops: list[Op], window: int, cap: int) -> dict[str, dict[str, Any]]:
    """The receipts recounted from scratch: the window as a list, each member's receipt with the
    version of the event that last moved it, the cap applied by the oldest such version."""
    live: list[tuple[str, str, int]] = []  # (message id, sender, version) in the window
    reads: dict[str, tuple[str, int, int]] = {}  # reader -> (message id, version read, moved at)
    for version, (kind, who, which) in enumerate(ops, start=1):
        member, mid = f"u{who}", f"m{which}"
        ids = [m[0] for m in live]
        if kind == "send" and mid not in ids:
            live = [*live, (mid, member, version)][-window:]
        elif kind == "delete" and mid in ids and live[ids.index(mid)][1] == member:
            live.pop(ids.index(mid))
        elif kind == "read" and mid in ids:
            up_to = live[ids.index(mid)][2]
            if reads.get(member, ("", 0, 0))[1] < up_to:
                reads[member] = (mid, up_to, version)
                while len(reads) > cap:
                    del reads[min(reads, key=lambda r: reads[r][2])]
    by_recency = sorted(reads.items(), key=lambda item: item[1][2])
    return {
        reader: {"up_to_message_id": mid, "up_to_version": up_to,
                 "unread": sum(1 for m in live if m[2] > up_to and m[1] != reader)}
        for reader, (mid, up_to, _) in by_recency
    }  # fmt: skip


def as_events(ops: list[Op]) -> list[Event]:
    events = []
    for version, (kind, who, which) in enumerate(ops, start=1):
        member, mid = f"u{who}", f"m{which}"
        if kind == "send":
            events.append(sent(mid, member, "x", version))
        elif kind == "edit":
            events.append(edited(mid, member, "y", version))
        elif kind == "delete":
            events.append(deleted(mid, member, version))
        else:
            events.append(read(member, mid, version))
    return events


@settings(max_examples=300, deadline=None)
@given(OPS, st.integers(1, 6), st.integers(1, 4))
def test_unread_counts_equal_a_naive_recount_under_any_order_of_events(
    ops: list[Op], window: int, cap: int
) -> None:
    reducer = chat_room_domain(readers=cap, window=window).reducer
    apply = chat_room_domain(readers=cap, window=window).projections[0].apply
    state: State | None = None
    view: Any = None
    for n, event in enumerate(as_events(ops), start=1):
        state = reducer(state, event)
        view = apply(view, event)
        expected = naive(ops[:n], window, cap)
        assert reads_of(state) == expected
        assert reads_of(view) == expected
        assert list(state.get("reads", {})) == list(expected)  # least recently read first
        assert len(state.get("reads", {})) <= cap


def test_a_room_subscription_sends_the_receipts_that_moved_and_the_members_that_left() -> None:
    from workers.http.live.chat import RoomChanges

    apply = chat_room_domain(readers=2).projections[0].apply
    events = [sent("m1", "ann", "a", 1), sent("m2", "ann", "b", 2), read("r1", "m1", 3)]
    events += [read("r2", "m1", 4), sent("m3", "bob", "c", 5), read("r1", "m2", 6)]
    events += [read("r3", "m2", 7), edited("m3", "bob", "d", 8), read("r3", "m1", 9)]
    bodies = [orjson.loads(body) for _, body in RoomChanges(apply, None).render(events)]
    assert ["reads" in b for b in bodies] == [False, False, True, True, False, True, True, False,
                                              False]  # fmt: skip
    assert bodies[2]["reads"] == {"r1": {"up_to_message_id": "m1", "up_to_version": 1}}
    assert bodies[5]["reads"] == {"r1": {"up_to_message_id": "m2", "up_to_version": 2}}
    assert "readers_left" not in bodies[5]
    assert bodies[6]["reads"] == {"r3": {"up_to_message_id": "m2", "up_to_version": 2}}
    assert bodies[6]["readers_left"] == ["r2"]  # the cap of 2: r2 read least recently
