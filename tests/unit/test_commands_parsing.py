"""Parsing command request bodies: 400 for malformed input, 413 over the limit."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from topics.errors import InvalidEnvelope, InvalidInput
from workers.roles.command.requests import CommandRequest, PayloadTooLarge, parse_request

LIMIT = 1024


def _parse(body: bytes | dict[str, Any] | list[Any], aggregate_id: str = "o-1") -> CommandRequest:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return parse_request("order", aggregate_id, raw, max_bytes=LIMIT)


def _rejected(body: bytes | dict[str, Any] | list[Any], aggregate_id: str = "o-1") -> str:
    with pytest.raises(InvalidInput) as caught:
        _parse(body, aggregate_id)
    assert not isinstance(caught.value, PayloadTooLarge)
    assert caught.value.retriable is False
    return str(caught.value)


def test_a_full_body_becomes_a_request() -> None:
    body = {
        "type": "OrderPlaced",
        "data": {"items": [{"sku": "a", "qty": 1, "price": 2}]},
        "client_id": "web",
        "command_id": "cmd-1",
        "correlation_id": "corr-1",
        "causation_id": "cause-1",
    }
    request = _parse(body)
    assert request == CommandRequest(
        aggregate_type="order",
        aggregate_id="o-1",
        type="OrderPlaced",
        data={"items": [{"sku": "a", "qty": 1, "price": 2}]},
        client_id="web",
        command_id="cmd-1",
        correlation_id="corr-1",
        causation_id="cause-1",
    )
    assert request.key == "order:o-1"


def test_data_and_ids_are_optional() -> None:
    request = _parse({"type": "OrderDelivered"})
    assert request.data == {}
    assert request.client_id is request.command_id is None
    assert _parse({"type": "OrderDelivered", "command_id": None}).command_id is None


@pytest.mark.parametrize(
    "raw", [b"", b"{", b"not json", b'{"type": "A",}', b"\xff\xfe{}", b"{'type': 'A'}"]
)
def test_non_json_is_rejected(raw: bytes) -> None:
    assert "not valid JSON" in _rejected(raw)


@pytest.mark.parametrize("body", [b"[]", b'[{"type": "A"}]', b'"OrderPaid"', b"null", b"1"])
def test_a_body_that_is_not_an_object_is_rejected(body: bytes) -> None:
    assert "JSON object" in _rejected(body)


@pytest.mark.parametrize("body", [{}, {"type": ""}, {"type": None}, {"type": 1}, {"type": ["A"]}])
def test_a_missing_or_empty_type_is_rejected(body: dict[str, Any]) -> None:
    assert "'type'" in _rejected(body)


def test_an_unknown_field_is_named_with_the_allowed_ones() -> None:
    message = _rejected({"type": "OrderPaid", "data": {}, "amount": 5})
    assert "'amount'" in message
    assert "command_id" in message and "data" in message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("client_id", ""),
        ("client_id", 5),
        ("command_id", "x" * 257),
        ("command_id", ["c"]),
        ("correlation_id", {"id": "c"}),
        ("causation_id", True),
    ],
)
def test_bad_metadata_ids_are_rejected(name: str, value: Any) -> None:
    assert repr(name) in _rejected({"type": "OrderPaid", name: value})


def test_ids_of_256_characters_fit() -> None:
    assert _parse({"type": "OrderPaid", "command_id": "c" * 256}).command_id == "c" * 256


@pytest.mark.parametrize("aggregate_id", ["", " o", "-o", "o/1", "o 1", "o\x00", "é", "x" * 129])
def test_a_bad_aggregate_id_is_rejected(aggregate_id: str) -> None:
    assert "aggregate id" in _rejected({"type": "OrderPaid"}, aggregate_id)


def test_an_aggregate_id_with_a_trailing_newline_is_rejected() -> None:
    # An id from a URL-decoded path ("o-1%0A") must not become a second aggregate whose
    # key, b"order:o-1\n", prints like b"order:o-1".
    assert "aggregate id" in _rejected({"type": "OrderPaid"}, "o-1\n")


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"$where": "1"}, "data.$where"),
        ({"a.b": 1}, "data.a.b"),
        ({"items": [{"sku": {"$ne": None}}]}, "data.items[0].sku.$ne"),
        ({"n": 2**64 - 1}, "data.n"),
    ],
)
def test_unsafe_data_keys_are_rejected_with_their_path(data: dict[str, Any], path: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        _parse({"type": "OrderPlaced", "data": data})
    assert path in str(caught.value)
    assert isinstance(caught.value.__cause__, InvalidEnvelope)
    assert caught.value.__cause__.field == path


@pytest.mark.parametrize("data", [[], "x", 1, None])
def test_data_that_is_not_an_object_is_rejected(data: Any) -> None:
    assert "data" in _rejected({"type": "OrderPaid", "data": data})


def test_a_body_over_the_limit_is_payload_too_large() -> None:
    body = orjson.dumps({"type": "OrderShipped", "data": {"carrier": "x" * LIMIT}})
    with pytest.raises(PayloadTooLarge) as caught:
        _parse(body)
    assert str(len(body)) in str(caught.value) and str(LIMIT) in str(caught.value)
    # The size check comes first: a huge body is never parsed, valid or not.
    with pytest.raises(PayloadTooLarge):
        _parse(b"[" * (LIMIT + 1))


def test_a_body_exactly_at_the_limit_is_accepted() -> None:
    base = orjson.dumps({"type": "OrderShipped", "data": {"carrier": ""}})
    body = orjson.dumps({"type": "OrderShipped", "data": {"carrier": "x" * (LIMIT - len(base))}})
    assert len(body) == LIMIT
    assert _parse(body).data["carrier"] == "x" * (LIMIT - len(base))
