"""Parsing command request bodies: 400 for malformed input, 413 over the limit."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from topics.errors import InvalidEnvelope, InvalidInput
from workers.ports import Record
from workers.roles.command.requests import CommandRequest, PayloadTooLarge, parse_request
from workers.runtime.agents import command_request

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


@pytest.mark.parametrize("expected", [0, 1, 7, 2**63 - 1])
def test_an_expected_version_is_a_whole_number_from_zero(expected: int) -> None:
    assert _parse({"type": "OrderPaid", "expected_version": expected}).expected_version == expected


def test_no_expected_version_or_null_is_none() -> None:
    assert _parse({"type": "OrderPaid"}).expected_version is None
    assert _parse({"type": "OrderPaid", "expected_version": None}).expected_version is None


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        (b"-1", "0 or more"),
        (b"-9223372036854775809", "0 or more"),
        (b"9223372036854775808", "does not fit in 64 bits"),
        (b"18446744073709551617", "18446744073709551617 does not fit in 64 bits"),
        (b"1e3", "with a fraction or an exponent"),
        (b"7.0", "7.0"),
        (b"7.5", "7.5"),
        (b"true", "a boolean (true)"),
        (b"false", "a boolean (false)"),
        (b'"7"', "a string ('7'); send the number without quotes"),
        (b'"seven"', "'seven'"),
        (b"[7]", "an array"),
        (b'{"$gt": 0}', "an object"),
    ],
)
def test_a_malformed_expected_version_is_named_with_the_fix(raw: bytes, named: str) -> None:
    body = b'{"type": "OrderPaid", "expected_version": ' + raw + b"}"
    message = _rejected(body)
    assert message.startswith("field expected_version: ") and named in message, message
    assert "2**63-1" in message or "0 or more" in message


def test_a_hostile_expected_version_string_is_cut_short_in_the_message() -> None:
    message = _rejected({"type": "OrderPaid", "expected_version": "\n\x1b[31m" + "9" * 900})
    assert len(message) < 300 and "\x1b" not in message and "\n" not in message
    assert "\\n\\x1b[31m999" in message  # escaped, as repr writes it


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


def _from_topic(command: dict[str, Any], offset: int = 7) -> CommandRequest:
    body = {"aggregate_type": "order", "aggregate_id": "o-1", "type": "OrderPaid", **command}
    record = Record("f.commands", 2, offset, b"order:o-1", orjson.dumps(body))
    return command_request(record, max_bytes=LIMIT)


@pytest.mark.parametrize("command", [{}, {"command_id": None}])
def test_a_topic_command_without_an_id_or_with_null_has_its_records_position(
    command: dict[str, Any],
) -> None:
    # A redelivery (the same position) is the same command: its outcome, not a second event.
    assert _from_topic(command).command_id == "f.commands:2:7"
    assert _from_topic(command) == _from_topic(command)
    assert _from_topic(command, offset=8).command_id == "f.commands:2:8"


def test_a_topic_commands_own_id_is_kept_and_a_bad_one_refused() -> None:
    assert _from_topic({"command_id": "c-1"}).command_id == "c-1"
    for bad in ("", 7, False, "x" * 257):
        with pytest.raises(InvalidInput, match="'command_id'"):
            _from_topic({"command_id": bad})
