"""Routes declared once: the router's choices and the query binder's messages, from the
declarations alone (no server)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from topics.errors import InvalidInput
from workers.http.declared import (
    LAST_EVENT_ID,
    EventsQuery,
    HealthQuery,
    OutcomeQuery,
    StateQuery,
)
from workers.http.edge.params import bind_query
from workers.http.edge.request import MultiValues
from workers.http.edge.responses import Response
from workers.http.edge.routes import Api
from workers.http.live.streams import whole_number


async def nothing(request: object) -> Response:
    return Response(b"{}")


def api() -> Api:
    found = Api()
    found.get("/v1/rooms/{room_id}/subscribe")(nothing)
    found.get("/v1/{aggregate_type}/{aggregate_id}/subscribe")(nothing)
    found.post("/v1/{aggregate_type}/{aggregate_id}/events")(nothing)
    found.get("/v1/{aggregate_type}/{aggregate_id}/events")(nothing)
    found.get("/console/login")(nothing)
    found.get("/console/{unknown:.*}")(nothing)
    return found


def test_the_first_declared_route_that_matches_wins_and_a_static_one_before_any() -> None:
    routes = api()
    room, params = routes.find("GET", "/v1/rooms/lobby/subscribe")  # type: ignore[misc]
    assert room.template == "/v1/rooms/{room_id}/subscribe" and params == {"room_id": "lobby"}
    login, _ = routes.find("GET", "/console/login")  # type: ignore[misc]
    assert login.template == "/console/login"
    other, params = routes.find("GET", "/console/a/b")  # type: ignore[misc]
    assert other.template == "/console/{unknown:.*}" and params == {"unknown": "a/b"}


def test_a_path_that_exists_with_other_methods_names_them_and_an_unknown_one_none() -> None:
    routes = api()
    assert routes.find("DELETE", "/v1/order/o-1/events") == ["GET", "HEAD", "POST"]
    assert routes.find("GET", "/v1/order") == []
    assert routes.find("GET", "/v1/order/o-1/events/") == []  # a trailing slash is another path
    head, _ = routes.find("HEAD", "/v1/order/o-1/events")  # type: ignore[misc]
    assert head.method == "GET"


def test_a_segment_never_spans_a_slash_nor_holds_a_brace() -> None:
    routes = api()
    assert routes.find("GET", "/v1/a/b/c/events") == []
    assert routes.find("GET", "/v1/a/{b}/events") == []


def q(**values: str) -> MultiValues:
    return MultiValues(list(values.items()))


def test_whole_numbers_are_read_strictly_with_the_parameter_named() -> None:
    assert bind_query(EventsQuery, q(after_version="0007", limit="5")).after_version == 7
    for raw in ("+3", " 3", "1_000", "1e3", "3.0", "٣", "-1", "", "0x10"):
        with pytest.raises(
            InvalidInput, match=re.escape(f"after_version={raw!r} must be a whole number")
        ):
            bind_query(EventsQuery, q(after_version=raw))
    with pytest.raises(InvalidInput, match="limit=1001 must be between 1 and 1000"):
        bind_query(EventsQuery, q(limit="1001"))
    with pytest.raises(InvalidInput, match=r"after_version=999999999999999999… \(40 digits\)"):
        bind_query(EventsQuery, q(after_version="9" * 40))


def test_defaults_hold_when_a_parameter_is_not_given_and_unknown_ones_are_ignored() -> None:
    found = bind_query(EventsQuery, q(unknown="x"))
    assert (found.after_version, found.limit, found.min_version) == (0, 100, None)


def test_rules_between_parameters_are_the_declarations_own() -> None:
    with pytest.raises(InvalidInput, match="at_version or as_of, not both"):
        bind_query(StateQuery, q(at_version="2", as_of="2026-01-01T00:00:00Z"))
    with pytest.raises(InvalidInput, match="min_version or command_id, not both"):
        bind_query(StateQuery, q(min_version="2", command_id="c"))
    with pytest.raises(InvalidInput, match="give one of them"):
        bind_query(StateQuery, q(wait_ms="100"))


def test_times_need_an_offset_and_a_plus_that_became_a_space_is_named() -> None:
    found = bind_query(StateQuery, q(as_of="2026-01-01T00:00:00Z"))
    assert found.as_of == datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(InvalidInput, match="%2B"):
        bind_query(StateQuery, q(as_of="2026-01-01T00:00:00 02:00"))
    with pytest.raises(InvalidInput, match="as_of"):
        bind_query(StateQuery, q(as_of="yesterday"))


def test_text_lengths_and_flags() -> None:
    with pytest.raises(InvalidInput, match="command_id must be 1 to 256 characters"):
        bind_query(OutcomeQuery, q(command_id="x" * 257))
    with pytest.raises(InvalidInput, match="command_id must be 1 to 256 characters"):
        bind_query(OutcomeQuery, q(command_id=""))
    assert bind_query(HealthQuery, q(verbose="")).verbose is True
    assert bind_query(HealthQuery, q(verbose="false")).verbose is False
    assert bind_query(HealthQuery, q()).verbose is False
    assert bind_query(HealthQuery, q(verbose="true")).verbose is True
    for raw in ("-899443", "yes", "2", "1", "0", "TRUE", " true"):
        with pytest.raises(InvalidInput, match="must be true or false"):
            bind_query(HealthQuery, q(verbose=raw))


def test_the_declared_last_event_id_is_what_the_live_routes_take() -> None:
    declared = re.compile(str(LAST_EVENT_ID.schema["pattern"]))
    largest = 2**62
    taken = ["0", "7", "0" * 19, "9" * 18, str(largest - 1), str(largest), f" {largest} "]
    refused = [str(largest + 1), "9" * 19, "0" * 20, "1" * 20, "-1", "+1", "1e3", "٣", "²", "x"]
    for raw in taken:
        assert whole_number("header Last-Event-ID", raw.strip()) <= largest
        assert declared.match(raw), raw
    for raw in refused:
        with pytest.raises(InvalidInput, match=f"must be a whole number from 0 to {largest}"):
            whole_number("header Last-Event-ID", raw)
        assert not declared.match(raw), raw
    assert declared.match("") and declared.match("  ")  # blank: the parser starts at 0
