"""The chat room domain: a bounded window, who may change a message, schema versions, the query."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapshot_rules.projection import LIVE, ViewDoc, advance
from snapshot_rules.replay import Folded, State, replay
from tests.chat_events import T0, chat, deleted, edited, sent
from topics.envelope import Event
from topics.errors import InvalidEventData, InvalidInput, TransitionRejected
from workers.examples.domains.chat_pages import RoomQuery
from workers.examples.domains.chat_room import (
    CHAT_MESSAGES,
    CHAT_ROOM,
    apply_chat_view,
    chat_room_domain,
    reduce_chat_room,
)


def at(second: int) -> str:
    return (
        (T0 + timedelta(seconds=second)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def msg(mid: str, sender: str, content: str, second: int, edited_at: int | None = None) -> Any:
    return {
        "message_id": mid,
        "sender_id": sender,
        "content": content,
        "sent_at": at(second),
        "edited": edited_at is not None,
        "edited_at": None if edited_at is None else at(edited_at),
        "version": second,
    }


def room(messages: list[Any], horizon: int = 1, **counts: int) -> State:
    base = {"sent": 0, "edited": 0, "deleted": 0, "ignored": 0, "outside_window": 0}
    return {"messages": messages, "horizon": horizon, "counts": base | counts}


HELLO = room([msg("m1", "ann", "hello", 1)], sent=1)


@pytest.mark.parametrize(
    ("state", "event", "expected"),
    [
        (None, sent("m1", "ann", "hello"), HELLO),
        (
            HELLO,
            sent("m2", "bob", "hi", 2),
            room([msg("m1", "ann", "hello", 1), msg("m2", "bob", "hi", 2)], sent=2),
        ),
        (
            HELLO,
            edited("m1", "ann", "hello!", 2),
            room([{**msg("m1", "ann", "hello!", 1, edited_at=2)}], sent=1, edited=1),
        ),
        (HELLO, deleted("m1", "ann", 2), room([], sent=1, deleted=1)),
        (HELLO, deleted("m1", "mod", 2, role="moderator"), room([], sent=1, deleted=1)),
        # Ignored, and counted: what the marker cannot check, the fold does.
        (HELLO, edited("m1", "bob", "hijacked", 2), room(HELLO["messages"], sent=1, ignored=1)),
        (HELLO, deleted("m1", "bob", 2), room(HELLO["messages"], sent=1, ignored=1)),
        (HELLO, deleted("m1", "bob", 2, role="vip"), room(HELLO["messages"], sent=1, ignored=1)),
        (HELLO, sent("m1", "bob", "same id", 2), room(HELLO["messages"], sent=1, ignored=1)),
        # Not in the window: an older message (its page applies it) or an unknown one.
        (HELLO, edited("m9", "ann", "?", 2), room(HELLO["messages"], sent=1, outside_window=1)),
        (HELLO, deleted("m9", "ann", 2), room(HELLO["messages"], sent=1, outside_window=1)),
    ],
)
def test_reducer_folds_each_event(state: State | None, event: Event, expected: State) -> None:
    before = orjson.dumps(state)
    assert reduce_chat_room(state, event) == expected
    assert orjson.dumps(state) == before  # pure: the input state is untouched


def test_an_edit_after_deletion_is_ignored_and_the_message_stays_gone() -> None:
    events = [sent("m1", "ann", "a"), deleted("m1", "ann", 2), edited("m1", "ann", "back?", 3)]
    folded = replay(reduce_chat_room, events)
    assert folded.state == room([], sent=1, deleted=1, outside_window=1)
    assert folded.version == 3


def test_the_window_keeps_the_newest_messages_and_moves_its_horizon() -> None:
    small = chat_room_domain(window=3)
    events = [sent(f"m{v}", "ann", str(v), v) for v in range(1, 6)]
    state = replay(small.reducer, events).state
    assert state is not None
    assert [m["message_id"] for m in state["messages"]] == ["m3", "m4", "m5"]
    assert state["horizon"] == 3  # m1 and m2 live before it: pages from the store
    # A deleted message frees a place; the next send does not evict.
    state = replay(small.reducer, [deleted("m4", "ann", 6), sent("m6", "bob", "6", 7)],
                   start=Folded(state, 5)).state  # fmt: skip
    assert state is not None
    assert [m["message_id"] for m in state["messages"]] == ["m3", "m5", "m6"]
    assert state["horizon"] == 3


def test_the_state_stays_bounded_however_long_the_room() -> None:
    events = [sent(f"m{v}", "ann", "x" * 4000, v) for v in range(1, 2001)]
    state = replay(reduce_chat_room, events).state
    assert state is not None and len(state["messages"]) == 100
    assert state["counts"]["sent"] == 2000 and state["horizon"] == 1901
    assert len(orjson.dumps(state)) < 600_000  # 100 messages of 4 KB, whatever the room's age


def test_declared_moderator_roles_may_delete_any_message() -> None:
    strict = chat_room_domain(moderator_roles=("admin", "owner"))
    base = [sent("m1", "ann", "a"), sent("m2", "ann", "b", 2)]
    by_role = [deleted("m1", "zed", 3, role="owner"), deleted("m2", "zed", 4, role="moderator")]
    state = replay(strict.reducer, base + by_role).state
    assert state is not None and [m["message_id"] for m in state["messages"]] == ["m2"]


def test_bad_declarations_are_refused() -> None:
    with pytest.raises(ValueError, match="window must be from 1 to 1000"):
        chat_room_domain(window=0)
    with pytest.raises(ValueError, match="at least one moderator role"):
        chat_room_domain(moderator_roles=())


def test_an_old_delete_without_actor_is_read_as_a_moderators() -> None:
    old = chat("MessageDeleted", 2, schema=1, message_id="m1")  # stored before issue 14
    assert old.schema_version == 1 and "sender_id" not in old.data
    current = CHAT_ROOM.upcast(old)
    assert current.schema_version == 2
    assert dict(current.data) == {"message_id": "m1", "sender_id": "unknown", "role": "moderator"}
    CHAT_ROOM.check_data(current.type, current.data)  # the current schema accepts it
    state = replay(reduce_chat_room, [sent("m1", "ann", "a"), current]).state
    assert state is not None and state["messages"] == []


@pytest.mark.parametrize(
    ("kind", "data", "problem"),
    [
        ("MessageSent", {"message_id": "m1", "sender_id": "ann"}, "data.content is required"),
        ("MessageSent", {"message_id": "m1", "sender_id": "ann", "content": ""}, "non-empty"),
        ("MessageSent", {"message_id": "m", "sender_id": "a", "content": "x" * 4001}, "at most"),
        ("MessageEdited", {"message_id": "m1", "content": "x"}, "data.sender_id is required"),
        ("MessageDeleted", {"message_id": "m1"}, "data.sender_id is required"),
        ("MessageDeleted", {"message_id": "m1", "sender_id": "a", "role": ""}, "non-empty"),
        (
            "MessageDeleted",
            {"message_id": "m1", "sender_id": "a", "why": "spam"},
            "data.why is not",
        ),
    ],
)
def test_schema_rejects_bad_data_with_the_field_named(
    kind: str, data: dict[str, Any], problem: str
) -> None:
    with pytest.raises(InvalidEventData, match=problem):
        CHAT_ROOM.check_data(kind, data)


def test_a_room_starts_with_a_message_and_then_takes_any_chat_event() -> None:
    CHAT_ROOM.check_transition("r1", None, "MessageSent")
    for current in ("MessageSent", "MessageEdited", "MessageDeleted"):
        for requested in ("MessageSent", "MessageEdited", "MessageDeleted"):
            CHAT_ROOM.check_transition("r1", current, requested)
    for requested in ("MessageEdited", "MessageDeleted"):
        with pytest.raises(TransitionRejected, match="may not follow nothing"):
            CHAT_ROOM.check_transition("r1", None, requested)
    assert CHAT_ROOM.downstream_topics() == ["chat"]
    assert CHAT_ROOM.schema_version("MessageDeleted") == 2
    assert CHAT_ROOM.schema_version("MessageSent") == 1


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ({"limit": "0"}, "limit='0' must be a whole number from 1 to 1000"),
        ({"limit": "1001"}, "from 1 to 1000"),
        ({"limit": "ten"}, "limit='ten'"),
        ({"limit": "²"}, "limit='²'"),
        ({"before_version": "0"}, "before_version='0' must be a whole number"),
        ({"before_version": "-3"}, "before_version='-3'"),
        ({"before_version": "3", "before": "m1"}, "not both"),
        ({"source": "cache"}, "source='cache' must be 'view' or 'replay'"),
        ({"source": "view", "as_of": "2026-01-01T00:00:00Z"}, "as_of is answered from replay"),
    ],
)
def test_room_query_rejects_bad_parameters(query: dict[str, str], problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem):
        RoomQuery.parse("r1", query)


def test_room_query_defaults_and_as_of_implies_replay() -> None:
    assert RoomQuery.parse("r1", {}) == RoomQuery("r1", 100, None, None, "view", None)
    assert RoomQuery.parse("r1", {"before_version": "42"}).before_version == 42
    moment = "2026-01-01T00:00:00Z"
    assert RoomQuery.parse("r1", {"as_of": moment}).source == "replay"
    with pytest.raises(InvalidInput, match="room id"):
        RoomQuery.parse("bad room!", {})


def test_advance_skips_redeliveries_and_stops_at_a_gap() -> None:
    events = [sent("m1", "ann", "a"), sent("m2", "bob", "b", 2), sent("m3", "ann", "c", 3)]
    first = advance(CHAT_MESSAGES, None, events[:2])
    assert first.doc is not None and (first.doc.version, first.applied, first.gap) == (2, 2, False)
    again = advance(CHAT_MESSAGES, first.doc, events)
    assert (again.applied, again.skipped) == (1, 2)
    assert again.doc is not None and again.doc.version == 3
    gap = advance(CHAT_MESSAGES, None, [events[0], events[2]])
    assert gap.gap and gap.doc is not None and gap.doc.version == 1
    assert advance(CHAT_MESSAGES, None, [events[1]]).doc is None


# --- Hypothesis: the view and replay agree on any send/edit/delete sequence -----------------

SENDERS = ("ann", "bob", "cy")
IDS = tuple(f"m{i}" for i in range(6))

op = st.one_of(
    st.tuples(st.just("MessageSent"), st.sampled_from(IDS), st.sampled_from(SENDERS)),
    st.tuples(st.just("MessageEdited"), st.sampled_from(IDS), st.sampled_from(SENDERS)),
    st.tuples(st.just("MessageDeleted"), st.sampled_from(IDS), st.sampled_from((*SENDERS, "mod"))),
)


def to_events(ops: list[tuple[str, str, str]]) -> list[Event]:
    events = []
    for version, (kind, mid, sender) in enumerate(ops, start=1):
        if kind == "MessageDeleted":
            role = "moderator" if sender == "mod" else None
            events.append(deleted(mid, sender, version, role=role))
        else:
            data = {"message_id": mid, "sender_id": sender, "content": f"{kind} {version}"}
            events.append(chat(kind, version, **data))
    return events


@settings(max_examples=150, deadline=None)
@given(ops=st.lists(op, max_size=40), window=st.integers(1, 8), data=st.data())
def test_view_and_replay_agree_with_redeliveries_and_snapshots(
    ops: list[tuple[str, str, str]], window: int, data: st.DataObject
) -> None:
    domain = chat_room_domain(window=window)
    projection = domain.projections[0]
    events = to_events(ops)
    # At-least-once: some events arrive again, each after its first delivery.
    deliveries = list(events)
    for event in data.draw(st.lists(st.sampled_from(events), max_size=10)) if events else []:
        first = deliveries.index(event)
        where = data.draw(st.integers(min_value=first + 1, max_value=len(deliveries)))
        deliveries.insert(where, event)
    view = advance(projection, None, deliveries).doc

    replayed = replay(domain.reducer, events)
    # Replay from a snapshot taken at any point (stored as JSON-like data) ends in the same state.
    cut = data.draw(st.integers(min_value=0, max_value=len(events)))
    snap = replay(domain.reducer, events[:cut])
    stored = orjson.loads(orjson.dumps(snap.state)) if snap.state is not None else None
    assert replay(domain.reducer, events[cut:], start=Folded(stored, snap.version)) == replayed

    if not events:
        assert view is None and replayed.state is None
        return
    assert view is not None and replayed.state is not None
    assert view.version == replayed.version == len(events)
    for key in ("messages", "horizon", "counts"):
        assert view.view[key] == replayed.state[key]
    assert len(replayed.state["messages"]) <= window


def test_view_document_keeps_generation_and_counts_ignored_events() -> None:
    start = ViewDoc("chat_room", "r1", 1, apply_chat_view(None, sent("m1", "ann", "a")), "g1")
    step = advance(CHAT_MESSAGES, start, [edited("m1", "bob", "not yours", 2)])
    assert step.doc is not None
    assert step.doc.generation == "g1" and step.doc.version == 2
    assert step.doc.view["counts"]["ignored"] == 1
    assert step.doc.view["messages"][0]["content"] == "a"
    assert step.doc.view["updated_at"] == "2026-03-01T12:00:02.000Z"
    assert advance(CHAT_MESSAGES, None, [sent("m1", "a", "b")]).doc == ViewDoc(
        "chat_room", "r1", 1, apply_chat_view(None, sent("m1", "a", "b")), LIVE
    )
