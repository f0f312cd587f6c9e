"""Dead letters: poison records become DLQ records with their reason, headers and original bytes."""

from __future__ import annotations

import orjson
import pytest

from topics.envelope import encode, new_event
from topics.errors import StreamUnavailable
from workers.adapters.memory import MemoryProducer
from workers.metrics import Metrics
from workers.ports import Record
from workers.roles.deadletter import REASONS, DeadLetter, DeadLetters, decode_record, decode_stored

from .support import added, sample

MAX = 2000
DLQ = "t.dlq"


def record(value: bytes, offset: int = 0, *, key: bytes | None = b"counter:c1") -> Record:
    return Record("t.events.stored", 2, offset, key, value, [("correlation_id", b"c-1")])


@pytest.fixture
def letters(producer: MemoryProducer, metrics: Metrics) -> DeadLetters:
    return DeadLetters(producer, topic=DLQ, role="forwarder", metrics=metrics)


def dead(metrics: Metrics, reason: str) -> float:
    return sample(metrics, "eventfleet_dead_lettered_total", role="forwarder", reason=reason)


def test_a_record_over_the_size_bound_is_oversized_without_decoding() -> None:
    event = added("c1", [1])[0]
    raw = encode(event)
    assert decode_record(record(raw), max_event_bytes=len(raw)) == event  # at the bound: fine
    letter = decode_record(record(raw), max_event_bytes=len(raw) - 1)
    assert isinstance(letter, DeadLetter) and letter.reason == "oversized"
    assert letter.detail == f"{len(raw)} bytes > {len(raw) - 1}"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"\xff\xfe not json", "envelope"),
        (b"[1, 2]", "envelope"),
        (b"", "envelope"),
        (orjson.dumps({"id": "not-a-uuid"}), "aggregate_id"),  # the first missing field
        (encode(added("c1", [1])[0]).replace(b'"counter"', b'"Bad Type"'), "aggregate_type"),
    ],
)
def test_bytes_that_are_no_envelope_are_undecodable_naming_the_field(
    raw: bytes, field: str
) -> None:
    letter = decode_record(record(raw), max_event_bytes=MAX)
    assert isinstance(letter, DeadLetter) and letter.reason == "undecodable"
    assert letter.detail.startswith(f"{field}:") and letter.record.value == raw


def test_decode_stored_keeps_good_events_in_order_and_letters_the_rest() -> None:
    good = added("c1", [1, 2])
    unversioned = new_event("counter", "c1", "Added", {"n": 3})
    records = [
        record(encode(good[0]), 0),
        record(b"{", 1),
        record(encode(unversioned), 2),
        record(encode(good[1]), 3),
        record(b"x" * (MAX + 1), 4),
    ]
    decoded, letters = decode_stored(records, max_event_bytes=MAX)
    assert decoded == [(good[0], records[0]), (good[1], records[3])]
    assert [(dl.record.offset, dl.reason) for dl in letters] == [
        (1, "undecodable"),
        (2, "invalid"),
        (4, "oversized"),
    ]
    assert letters[1].detail == "a stored event must carry a version"
    assert {dl.reason for dl in letters} <= REASONS
    assert decode_stored([], max_event_bytes=MAX) == ([], [])


async def test_a_dead_letter_keeps_key_bytes_and_headers_and_says_why(
    letters: DeadLetters, producer: MemoryProducer, metrics: Metrics
) -> None:
    poison = record(b"\x00\xffbinary poison", 41)
    keyless = record(b"{", 42, key=None)
    await letters.send(
        [
            DeadLetter(poison, "undecodable", "envelope: not valid JSON"),
            DeadLetter(keyless, "undecodable", "envelope: not valid JSON"),
        ]
    )
    out, out_keyless = producer.records(DLQ)
    assert (out.key, out.value) == (poison.key, poison.value)
    assert out.headers == (
        ("correlation_id", b"c-1"),  # the original headers first, unchanged
        ("dlq_reason", b"undecodable"),
        ("dlq_detail", b"envelope: not valid JSON"),
        ("dlq_source", b"t.events.stored/2/41"),
        ("dlq_role", b"forwarder"),
    )
    assert out_keyless.key is None and dict(out_keyless.headers)["dlq_source"].endswith(b"/42")
    assert dead(metrics, "undecodable") == 2


async def test_a_long_detail_is_cut_to_a_header_sized_one(
    letters: DeadLetters, producer: MemoryProducer
) -> None:
    detail = "é" * 800  # 1,600 bytes of UTF-8
    await letters.send([DeadLetter(record(b"{"), "invalid", detail)])
    [out] = producer.records(DLQ)
    assert dict(out.headers)["dlq_detail"] == detail.encode()[:1000]


async def test_kafka_down_raises_so_the_batch_is_retried_and_counts_nothing(
    letters: DeadLetters, producer: MemoryProducer, metrics: Metrics
) -> None:
    letter = DeadLetter(record(b"{"), "undecodable", "envelope: not valid JSON")
    producer.down()
    with pytest.raises(StreamUnavailable) as caught:
        await letters.send([letter])
    assert caught.value.retriable and producer.records(DLQ) == []
    assert dead(metrics, "undecodable") == 0
    producer.up()
    await letters.send([letter])
    assert len(producer.records(DLQ)) == 1 and dead(metrics, "undecodable") == 1


def test_every_reason_is_a_short_metric_label() -> None:
    assert "handler_failed" in REASONS and "oversized" in REASONS
    assert all(reason.isidentifier() and reason.islower() for reason in REASONS)
