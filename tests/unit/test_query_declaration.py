"""A domain query names the path parameter holding its aggregate: inferred, declared, or refused
at declaration with the fix."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from snapshot_rules.queries import Query, QueryAnswer, QueryContext, path_params


async def handler(
    context: QueryContext, params: Mapping[str, str], query: Mapping[str, str]
) -> QueryAnswer:
    return QueryAnswer(200, {})


def test_the_aggregate_parameter_is_inferred_from_the_path() -> None:
    assert Query("/v1/rooms/{room_id}/messages", handler).aggregate_param == "room_id"
    assert Query("/v1/x/{aggregate_id}/{page}", handler).aggregate_param == "aggregate_id"
    assert Query("/v1/boards/top", handler).aggregate_param is None  # about no single aggregate


def test_a_declared_parameter_is_kept_and_none_means_no_single_aggregate() -> None:
    assert (
        Query("/v1/{team}/{board:[a-z]+}", handler, aggregate_param="board").aggregate_param
        == "board"
    )
    assert Query("/v1/search/{term}", handler, aggregate_param=None).aggregate_param is None
    assert path_params("/v1/{team}/{board:[a-z]+}/x") == ["team", "board"]


def test_a_parameter_the_path_lacks_is_refused_naming_the_ones_it_has() -> None:
    with pytest.raises(ValueError) as refused:
        Query("/v1/rooms/{room_id}/messages", handler, aggregate_param="room")
    message = str(refused.value)
    assert "aggregate_param='room' is not a parameter" in message and "room_id" in message
    with pytest.raises(ValueError, match="it has no parameters"):
        Query("/v1/boards/top", handler, aggregate_param="board")


def test_several_parameters_and_none_declared_is_refused() -> None:
    with pytest.raises(ValueError, match="say which one holds the aggregate id"):
        Query("/v1/{team}/{board}/cards", handler)
