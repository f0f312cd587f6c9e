"""Parsing an append across aggregates: the request's ids shared by every item, each item what a
single append's path and body say, and every refusal naming the item and the field."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from topics.envelope import Actor
from topics.errors import InvalidEventData, InvalidInput
from workers.roles.command.multi_requests import parse_multi
from workers.roles.command.requests import PayloadTooLarge

OPEN = {"aggregate_type": "account", "aggregate_id": "a1", "type": "AccountOpened",
        "data": {"owner": "o"}}  # fmt: skip


def parsed(body: Any, *, max_items: int = 3, max_bytes: int = 4096) -> Any:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return parse_multi(raw, max_bytes=max_bytes, max_items=max_items, actor=Actor("ann"))


def test_every_item_carries_the_requests_ids_and_sender_and_its_own_expectation() -> None:
    request = parsed({
        "appends": [OPEN, {**OPEN, "aggregate_id": "a2", "expected_version": 0}],
        "command_id": "c1", "client_id": "cl", "correlation_id": "co", "causation_id": "ca",
    })  # fmt: skip
    first, second = request.items
    assert (first.aggregate_id, second.aggregate_id) == ("a1", "a2")
    assert (first.expected_version, second.expected_version) == (None, 0)
    for item in request.items:
        assert (item.command_id, item.client_id, item.correlation_id, item.causation_id) == (
            "c1", "cl", "co", "ca",
        )  # fmt: skip
        assert item.actor == Actor("ann")
    assert request.command_id == "c1" and request.actor == Actor("ann")
    no_data = parsed({"appends": [{k: v for k, v in OPEN.items() if k != "data"}]})
    assert no_data.items[0].data == {}


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"appends": []}, "field 'appends' is required"),
        ({"appends": None}, "field 'appends' is required"),
        ({"appends": {"0": OPEN}}, "field 'appends' is required"),
        ({"appends": [OPEN] * 4}, "has 4 items; at most 3"),
        ({"appends": [OPEN, OPEN]}, "appends[1] names account a1, as appends[0] does"),
        ({"appends": [OPEN], "expected_version": 1}, "unknown field 'expected_version'"),
        ({"appends": [{**OPEN, "actor": "bob"}]}, "appends[0] has an unknown field 'actor'"),
        ({"appends": [7]}, "appends[0] must be an object"),
        ({"appends": [{**OPEN, "aggregate_type": 7}]}, "appends[0].aggregate_type (int)"),
        ({"appends": [{**OPEN, "aggregate_type": None}]}, "appends[0].aggregate_type (missing)"),
        ({"appends": [{**OPEN, "aggregate_id": "-x"}]}, "appends[0].aggregate_id '-x'"),
        ({"appends": [{**OPEN, "aggregate_id": "x" * 129}]}, "must be an aggregate id"),
        ({"appends": [{**OPEN, "type": 3}]}, "appends[0].type is required"),
        ({"appends": [{**OPEN, "expected_version": "1"}]}, "appends[0].expected_version: "),
        ({"appends": [{**OPEN, "data": "x"}]}, "appends[0].data"),
        ({"appends": [OPEN], "command_id": ""}, "'command_id' must be a string of 1 to 256"),
        ({"appends": [OPEN], "client_id": "a\u2028b"}, "control character"),
        ({"appends": [OPEN], "command_id": "dlq-replay:1"}, "dead-letter desk's own"),
        (b"[1]", "the body must be a JSON object"),
        (b"{", "the body is not valid JSON"),
    ],
)
def test_what_is_refused_is_named_with_its_item_and_field(body: Any, says: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parsed(body)
    assert says in str(caught.value)


def test_a_number_beyond_64_bits_is_invalid_data_and_a_large_body_too_large() -> None:
    raw = b'{"appends": [{"aggregate_type": "account", "aggregate_id": "a1", "type": "T",' \
        b' "data": {"n": 18446744073709551616}}]}'  # fmt: skip
    with pytest.raises(InvalidEventData, match=r"appends\[0\]\.data"):
        parsed(raw)
    with pytest.raises(PayloadTooLarge, match="the limit is 100 bytes"):
        parsed({"appends": [OPEN, {**OPEN, "aggregate_id": "a2"}]}, max_bytes=100)
