"""Example domain **game** (async, high volume): one match's log of player actions.

Why events: keeping only a game's final state makes bugs impossible to reproduce; a log of every
player action can replay the match to any moment (``GET /v1/game/{id}/state?at_version=...``).

A log records what the game server reports and does not second-guess its order: only
``MatchStarted`` is checked (it opens a match); every other event type is declared without
``after=``, so the marker passes it (a type without a transition rule is not checked) and a late
packet after ``MatchEnded`` is still recorded. The fold keeps the state bounded however long a
match runs: per player (at most ``MAX_PLAYERS``) a position, a score and counts, never the moves
themselves; an action by someone not in the match changes nothing and is counted.

Matches produce events fast, so snapshots go by time, not by count: ``interval(5)`` keeps the
snapshot at most five seconds of play behind the newest event (a replay then folds at most
five seconds of moves), and the end of a match is always snapshotted.
"""

from __future__ import annotations

from snapshot_rules.domain import NEW, Domain, Route, event
from snapshot_rules.replay import State
from snapshot_rules.rules import interval, on
from snapshot_rules.schema import ListOf, Number, Text, fields, optional
from topics.envelope import Event
from topics.jsonvalue import JsonObject

MAX_PLAYERS = 16
SNAPSHOT_EVERY_S = 5.0
_PLAYER = Text(max_length=64)
_COORD = Number(minimum=-1_000_000, maximum=1_000_000)
_POINTS = Number(integer=True, minimum=-1000, maximum=1000)
_LATENCY = Number(integer=True, minimum=0, maximum=60_000)


def _player() -> JsonObject:
    return {"x": 0, "y": 0, "score": 0, "moves": 0, "items": 0}


def reduce_game(state: State | None, event: Event) -> State:
    """Fold one stored game event; pure."""
    data = event.data
    if event.type == "MatchStarted":
        joined = {p: _player() for p in data["players"]}
        return {
            "map": data["map"],
            "status": "running",
            "players": joined,
            "events": 1,
            "ignored": 0,
            "winner": None,
            "pings": 0,
            "max_latency_ms": 0,
        }
    game = dict(
        state
        or {
            "map": None,
            "status": "unstarted",
            "players": {},
            "events": 0,
            "ignored": 0,
            "winner": None,
            "pings": 0,
            "max_latency_ms": 0,
        }
    )
    game["events"] += 1
    if event.type == "MatchEnded":
        return {**game, "status": "ended", "winner": data.get("winner")}
    players: JsonObject = game["players"]
    player = data.get("player_id")
    if player not in players:
        return {**game, "ignored": game["ignored"] + 1}
    me = dict(players[player])
    if event.type == "PlayerMoved":
        me.update(x=data["x"], y=data["y"], moves=me["moves"] + 1)
    elif event.type == "PlayerScored":
        me["score"] += data["points"]
    elif event.type == "ItemPicked":
        me["items"] += 1
    elif event.type == "PlayerPinged":
        latency = max(game["max_latency_ms"], data["latency_ms"])
        return {**game, "pings": game["pings"] + 1, "max_latency_ms": latency}
    return {**game, "players": {**players, player: me}}


GAME = Domain(
    name="game",
    events={
        "MatchStarted": event(
            fields(
                closed=True,
                map=Text(max_length=64),
                players=ListOf(_PLAYER, min_items=1, max_items=MAX_PLAYERS),
            ),
            after=[NEW],
        ),
        "PlayerMoved": event(fields(closed=True, player_id=_PLAYER, x=_COORD, y=_COORD)),
        "PlayerScored": event(fields(closed=True, player_id=_PLAYER, points=_POINTS)),
        "ItemPicked": event(fields(closed=True, player_id=_PLAYER, item=Text(max_length=64))),
        "PlayerPinged": event(fields(closed=True, player_id=_PLAYER, latency_ms=_LATENCY)),
        "MatchEnded": event(fields(closed=True, winner=optional(_PLAYER))),
    },
    reducer=reduce_game,
    snapshot_rule=interval(SNAPSHOT_EVERY_S) | on("MatchEnded"),
    routes=(Route("games", frozenset({"MatchStarted", "MatchEnded", "PlayerScored"})),),
)
