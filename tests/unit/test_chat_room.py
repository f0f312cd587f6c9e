"""The chat room domain and its view: reducer tables, rules, windows, and view/replay agreement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapshot_rules.domains.chat_room import (
    CHAT_MESSAGES,
    CHAT_ROOM,
    RoomQuery,
    apply_chat_view,
    reduce_chat_room,
    window,
)
from snapshot_rules.projection import LIVE, ViewDoc, advance
from snapshot_rules.replay import Folded, State, replay
from topics.envelope import Event, new_event
from topics.errors import InvalidEventData, InvalidInput, TransitionRejected

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def chat(kind: str, version: int = 1, room: str = "r1", **data: Any) -> Event:
    at = T0 + timedelta(seconds=version)
    return new_event("chat_room", room, kind, data, version=version, occurred_at=at)


def sent(mid: str, sender: str, content: str, version: int = 1) -> Event:
    return chat("MessageSent", version, message_id=mid, sender_id=sender, content=content)


def edited(mid: str, sender: str, content: str, version: int) -> Event:
    return chat("MessageEdited", version, message_id=mid, sender_id=sender, content=content)


def deleted(mid: str, version: int) -> Event:
    return chat("MessageDeleted", version, message_id=mid)


def msg(mid: str, sender: str, content: str, second: int, edited_at: int | None = None) -> Any:
    def at(s: int) -> str:
        return (T0 + timedelta(seconds=s)).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    return {
        "message_id": mid,
        "sender_id": sender,
        "content": content,
        "sent_at": at(second),
        "edited": edited_at is not None,
        "edited_at": None if edited_at is None else at(edited_at),
    }


HELLO = {"messages": [msg("m1", "ann", "hello", 1)], "ignored": 0}


@pytest.mark.parametrize(
    ("state", "event", "expected"),
    [
        (None, sent("m1", "ann", "hello"), HELLO),
        (
            HELLO,
            sent("m2", "bob", "hi", 2),
            {"messages": [msg("m1", "ann", "hello", 1), msg("m2", "bob", "hi", 2)], "ignored": 0},
        ),
        (
            HELLO,
            edited("m1", "ann", "hello!", 2),
            {"messages": [msg("m1", "ann", "hello!", 1, edited_at=2)], "ignored": 0},
        ),
        (HELLO, deleted("m1", 2), {"messages": [], "ignored": 0}),
        # Ignored, and counted: what the marker cannot check, the fold does.
        (HELLO, edited("m1", "bob", "hijacked", 2), {**HELLO, "ignored": 1}),
        (HELLO, edited("m9", "ann", "nothing there", 2), {**HELLO, "ignored": 1}),
        (HELLO, deleted("m9", 2), {**HELLO, "ignored": 1}),
        (HELLO, sent("m1", "bob", "same id", 2), {**HELLO, "ignored": 1}),
    ],
)
def test_reducer_folds_each_event(state: State | None, event: Event, expected: State) -> None:
    before = orjson.dumps(state)
    assert reduce_chat_room(state, event) == expected
    assert orjson.dumps(state) == before  # pure: the input state is untouched


def test_an_edit_after_deletion_is_ignored_and_the_message_stays_gone() -> None:
    events = [sent("m1", "ann", "a"), deleted("m1", 2), edited("m1", "ann", "back?", 3)]
    folded = replay(reduce_chat_room, events)
    assert folded.state == {"messages": [], "ignored": 1}
    assert folded.version == 3


@pytest.mark.parametrize(
    ("kind", "data", "problem"),
    [
        ("MessageSent", {"message_id": "m1", "sender_id": "ann"}, "data.content is required"),
        ("MessageSent", {"message_id": "m1", "sender_id": "ann", "content": ""}, "non-empty"),
        ("MessageSent", {"message_id": "m", "sender_id": "a", "content": "x" * 4001}, "at most"),
        ("MessageEdited", {"message_id": "m1", "content": "x"}, "data.sender_id is required"),
        ("MessageDeleted", {"message_id": "m1", "why": "spam"}, "data.why is not a known field"),
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


MESSAGES = [msg(f"m{i}", "ann", str(i), i) for i in range(1, 8)]


@pytest.mark.parametrize(
    ("limit", "before", "expected"),
    [
        (3, None, ["m5", "m6", "m7"]),
        (100, None, [f"m{i}" for i in range(1, 8)]),
        (2, "m4", ["m2", "m3"]),
        (5, "m2", ["m1"]),
        (5, "m1", []),
    ],
)
def test_window_answers_the_newest_messages_oldest_first(
    limit: int, before: str | None, expected: list[str]
) -> None:
    page = window(MESSAGES, limit=limit, before=before)
    assert [m["message_id"] for m in page] == expected


def test_window_before_an_unknown_message_is_a_clear_error() -> None:
    with pytest.raises(InvalidInput, match="before='gone' names no message"):
        window(MESSAGES, limit=10, before="gone")


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ({"limit": "0"}, "limit='0' must be a whole number from 1 to 1000"),
        ({"limit": "1001"}, "from 1 to 1000"),
        ({"limit": "ten"}, "limit='ten'"),
        ({"source": "cache"}, "source='cache' must be 'view' or 'replay'"),
        ({"source": "view", "as_of": "2026-01-01T00:00:00Z"}, "as_of is answered from replay"),
    ],
)
def test_room_query_rejects_bad_parameters(query: dict[str, str], problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem):
        RoomQuery.parse("r1", query)


def test_room_query_defaults_and_as_of_implies_replay() -> None:
    assert RoomQuery.parse("r1", {}) == RoomQuery("r1", 100, None, "view", None)
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
    assert advance(CHAT_MESSAGES, None, [events[1]]) == advance(CHAT_MESSAGES, None, [events[1]])
    assert advance(CHAT_MESSAGES, None, [events[1]]).doc is None


# --- Hypothesis: the view and replay agree on any send/edit/delete sequence -----------------

SENDERS = ("ann", "bob", "cy")
IDS = tuple(f"m{i}" for i in range(6))

op = st.one_of(
    st.tuples(st.just("MessageSent"), st.sampled_from(IDS), st.sampled_from(SENDERS)),
    st.tuples(st.just("MessageEdited"), st.sampled_from(IDS), st.sampled_from(SENDERS)),
    st.tuples(st.just("MessageDeleted"), st.sampled_from(IDS), st.just("")),
)


def to_events(ops: list[tuple[str, str, str]]) -> list[Event]:
    events = []
    for version, (kind, mid, sender) in enumerate(ops, start=1):
        data: dict[str, Any] = {"message_id": mid}
        if kind != "MessageDeleted":
            data |= {"sender_id": sender, "content": f"{kind} {version}"}
        events.append(chat(kind, version, **data))
    return events


def model(events: list[Event]) -> list[tuple[str, str, str, bool]]:
    """An independent reading of the rules: (id, sender, content, edited) of the live messages."""
    live: dict[str, tuple[str, str, bool]] = {}
    for e in events:
        mid, d = e.data["message_id"], e.data
        if e.type == "MessageSent" and mid not in live:
            live[mid] = (d["sender_id"], d["content"], False)
        elif e.type == "MessageEdited" and mid in live and live[mid][0] == d["sender_id"]:
            live[mid] = (live[mid][0], d["content"], True)
        elif e.type == "MessageDeleted":
            live.pop(mid, None)
    return [(mid, *fields) for mid, fields in live.items()]


def shape(messages: list[Any]) -> list[tuple[str, str, str, bool]]:
    return [(m["message_id"], m["sender_id"], m["content"], m["edited"]) for m in messages]


@settings(max_examples=150, deadline=None)
@given(ops=st.lists(op, max_size=40), data=st.data())
def test_view_and_replay_agree_with_redeliveries_and_snapshots(
    ops: list[tuple[str, str, str]], data: st.DataObject
) -> None:
    events = to_events(ops)
    # At-least-once: some events arrive again, each after its first delivery.
    deliveries = list(events)
    for event in data.draw(st.lists(st.sampled_from(events), max_size=10)) if events else []:
        first = deliveries.index(event)
        at = data.draw(st.integers(min_value=first + 1, max_value=len(deliveries)))
        deliveries.insert(at, event)
    view = advance(CHAT_MESSAGES, None, deliveries).doc

    replayed = replay(reduce_chat_room, events)
    # Replay from a snapshot taken at any point (stored as JSON-like data) ends in the same state.
    cut = data.draw(st.integers(min_value=0, max_value=len(events)))
    snap = replay(reduce_chat_room, events[:cut])
    stored = orjson.loads(orjson.dumps(snap.state)) if snap.state is not None else None
    from_snapshot = replay(reduce_chat_room, events[cut:], start=Folded(stored, snap.version))
    assert from_snapshot == replayed

    if not events:
        assert view is None and replayed.state is None
        return
    assert view is not None and replayed.state is not None
    assert view.version == replayed.version == len(events)
    assert view.view["messages"] == replayed.state["messages"]
    assert view.view["ignored"] == replayed.state["ignored"]
    assert shape(replayed.state["messages"]) == model(events)
    limit = data.draw(st.integers(min_value=1, max_value=10))
    assert window(view.view["messages"], limit=limit) == window(
        replayed.state["messages"], limit=limit
    )


@settings(max_examples=100, deadline=None)
@given(ops=st.lists(op, min_size=1, max_size=25), data=st.data())
def test_applying_any_event_twice_changes_nothing(
    ops: list[tuple[str, str, str]], data: st.DataObject
) -> None:
    events = to_events(ops)
    k = data.draw(st.integers(min_value=1, max_value=len(events)))
    doc = advance(CHAT_MESSAGES, None, events[:k]).doc
    assert doc is not None
    again = data.draw(st.sampled_from(events[:k]))
    step = advance(CHAT_MESSAGES, doc, [again])
    assert (step.doc, step.applied, step.skipped) == (None, 0, 1)
    # and folding the rest after the duplicate equals folding it straight
    rest = advance(CHAT_MESSAGES, doc, [again, *events[k:]]).doc or doc
    assert rest == advance(CHAT_MESSAGES, None, events).doc


def test_view_document_keeps_generation_and_counts_ignored_events() -> None:
    start = ViewDoc("chat_room", "r1", 1, apply_chat_view(None, sent("m1", "ann", "a")), "g1")
    step = advance(CHAT_MESSAGES, start, [edited("m1", "bob", "not yours", 2)])
    assert step.doc is not None
    assert step.doc.generation == "g1" and step.doc.version == 2
    assert step.doc.view["ignored"] == 1 and step.doc.view["messages"][0]["content"] == "a"
    assert step.doc.view["updated_at"] == "2026-03-01T12:00:02.000Z"
    assert advance(CHAT_MESSAGES, None, [sent("m1", "a", "b")]).doc == ViewDoc(
        "chat_room", "r1", 1, apply_chat_view(None, sent("m1", "a", "b")), LIVE
    )
