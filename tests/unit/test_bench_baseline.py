"""The judged append baseline checks what the appender checks, or its cost would flatter us."""

from __future__ import annotations

from typing import Any

import orjson

from topics.envelope import encode
from workers.devtools.bench.append import chains
from workers.devtools.bench.baseline import judge


def _events(count: int, rooms: int, run: str = "r") -> list[dict[str, Any]]:
    return [orjson.loads(encode(e)) for e in chains(count, rooms, run)]


def test_a_chained_history_is_accepted_and_numbered_from_one() -> None:
    heads: dict[str, tuple[str, str, int]] = {}
    events = _events(12, 3)
    assert judge(events, heads) == [True] * 12
    assert [e["version"] for e in events if e["aggregate_id"] == "r-0"] == [1, 2, 3, 4]
    assert heads["chat_room:r-1"][2] == 4


def test_a_break_in_the_chain_a_wrong_type_or_shape_is_refused_and_moves_no_head() -> None:
    heads: dict[str, tuple[str, str, int]] = {}
    first, second, third, fourth = _events(4, 1)
    assert judge([first], heads) == [True]
    skipped = dict(third)  # chained after an event that was never stored
    unknown = {**second, "type": "MessagePinned"}
    no_sender = {**second, "data": {"message_id": "m", "content": "x"}}
    not_a_map = {**second, "data": ["m"]}
    assert judge([skipped, unknown, no_sender, not_a_map], heads) == [False] * 4
    assert heads["chat_room:r-0"][2] == 1
    assert judge([second, third, fourth], heads) == [True, True, True]
    assert heads["chat_room:r-0"] == (fourth["id"], "MessageSent", 4)


def test_a_replayed_event_is_refused() -> None:
    heads: dict[str, tuple[str, str, int]] = {}
    first, second = _events(2, 1)
    assert judge([first, second, dict(second)], heads) == [True, True, False]
