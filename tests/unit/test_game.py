"""The game log: a bounded fold of player actions; only the start of a match is checked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from snapshot_rules.replay import replay
from snapshot_rules.rules import Progress
from topics.envelope import Event, new_event
from topics.errors import InvalidEventData, TransitionRejected
from workers.examples.domains.game import GAME, reduce_game

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def log(*steps: tuple[str, dict[str, Any]], step_ms: int = 50) -> list[Event]:
    def stored(v: int, kind: str, data: dict[str, Any]) -> Event:
        at = T0 + timedelta(milliseconds=step_ms * v)
        return new_event("game", "g1", kind, data, version=v, occurred_at=at)

    return [stored(v, kind, data) for v, (kind, data) in enumerate(steps, start=1)]


STARTED = ("MatchStarted", {"map": "dust", "players": ["ann", "bob"]})


def test_the_fold_keeps_positions_scores_and_counts() -> None:
    steps = [STARTED, ("PlayerMoved", {"player_id": "ann", "x": 3, "y": -2}),
             ("PlayerScored", {"player_id": "ann", "points": 10}),
             ("ItemPicked", {"player_id": "bob", "item": "medkit"}),
             ("PlayerPinged", {"player_id": "bob", "latency_ms": 80}),
             ("PlayerScored", {"player_id": "zed", "points": 99}),  # not in the match
             ("MatchEnded", {"winner": "ann"})]  # fmt: skip
    state = replay(reduce_game, log(*steps)).state
    assert state is not None
    assert state["players"]["ann"] == {"x": 3, "y": -2, "score": 10, "moves": 1, "items": 0}
    assert state["players"]["bob"]["items"] == 1
    assert (state["status"], state["winner"], state["ignored"]) == ("ended", "ann", 1)
    assert (state["events"], state["pings"], state["max_latency_ms"]) == (7, 1, 80)


def test_the_state_stays_bounded_however_long_the_match() -> None:
    moves = [("PlayerMoved", {"player_id": "ann", "x": i, "y": i}) for i in range(20_000)]
    state = replay(reduce_game, log(STARTED, *moves)).state
    assert state is not None and state["players"]["ann"]["moves"] == 20_000
    assert len(orjson.dumps(state)) < 1000


def test_only_the_start_of_a_match_is_checked() -> None:
    GAME.check_transition("g1", None, "MatchStarted")
    with pytest.raises(TransitionRejected, match="MatchStarted may not follow PlayerMoved"):
        GAME.check_transition("g1", "PlayerMoved", "MatchStarted")
    for kind in ("PlayerMoved", "PlayerScored", "ItemPicked", "PlayerPinged", "MatchEnded"):
        assert not GAME.spec(kind).checked
        GAME.check_transition("g1", None, kind)  # a log records what the server reports
        GAME.check_transition("g1", "MatchEnded", kind)  # even a late packet


def test_actions_before_a_start_are_recorded_and_ignored() -> None:
    state = replay(reduce_game, log(("PlayerMoved", {"player_id": "ann", "x": 1, "y": 1}))).state
    assert state is not None and (state["status"], state["ignored"]) == ("unstarted", 1)


@pytest.mark.parametrize(
    ("kind", "data", "problem"),
    [("MatchStarted", {"map": "dust", "players": []}, "hold 1 to 16 items"),
     ("MatchStarted", {"map": "dust", "players": [f"p{i}" for i in range(17)]}, "1 to 16"),
     ("PlayerMoved", {"player_id": "ann", "x": 1e9, "y": 0}, "at most"),
     ("PlayerScored", {"player_id": "ann", "points": 1.5}, "an integer"),
     ("MatchEnded", {"winner": ""}, "non-empty"),
     ("MatchEnded", {"loser": "bob"}, "not a known field")],
)  # fmt: skip
def test_bad_data_is_refused_naming_the_field(
    kind: str, data: dict[str, Any], problem: str
) -> None:
    with pytest.raises(InvalidEventData, match=problem):
        GAME.check_data(kind, data)
    GAME.check_data("MatchEnded", {})  # the winner is optional


def test_snapshots_go_by_play_time_and_at_the_end() -> None:
    rule = GAME.snapshot_rule
    at = T0 + timedelta(seconds=4)
    assert not rule.should_snapshot(Progress(900, "PlayerMoved", at, 10, T0))
    assert rule.should_snapshot(Progress(901, "PlayerMoved", at + timedelta(seconds=1), 10, T0))
    assert rule.should_snapshot(Progress(11, "MatchEnded", T0, 10, T0))
    assert rule.should_snapshot(Progress(1, "MatchStarted", T0))  # the first one at once
