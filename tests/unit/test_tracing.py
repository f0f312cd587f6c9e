"""The tracing module's rules, in process: off by default, W3C context in and out of headers."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from topics.envelope import Event, Metadata, decode, encode, metadata_of
from topics.errors import InvalidEnvelope
from workers import tracing
from workers.ports import Record

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01".encode()


@pytest.fixture
def on() -> Iterator[InMemorySpanExporter]:
    """Tracing on for one test, its spans kept by the SDK's in-memory exporter."""
    exporter = InMemorySpanExporter()
    assert tracing.configure("eventfleet-test", environ={}, exporter=exporter)
    try:
        yield exporter
    finally:
        tracing.shutdown()


def test_the_endpoint_follows_the_otlp_rules() -> None:
    assert tracing._endpoint({}) is None
    assert (
        tracing._endpoint({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"})
        == "http://c:4318/v1/traces"
    )
    both = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t/x",
    }
    assert tracing._endpoint(both) == "http://t/x"


def test_tracing_is_off_unless_an_endpoint_or_the_switch_names_it() -> None:
    assert not tracing.wanted({})
    assert not tracing.wanted({"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_SAMPLER": "always_on"})
    assert not tracing.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": ""})
    assert tracing.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"})
    assert tracing.wanted({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"})
    assert tracing.wanted({}, switch=True)
    assert not tracing.configure("eventfleet-test", environ={})
    assert not tracing.enabled()


def test_off_no_span_is_made_and_no_header_added() -> None:
    headers = [("event_id", b"1")]
    assert tracing.with_context(headers) is headers
    assert tracing.headers_of() == []
    assert tracing.carried(headers, [("traceparent", PARENT)]) is headers
    assert tracing.current_trace_id() is None and tracing.current_ids() is None
    assert tracing.exemplar() is None
    with tracing.span("x", parent=[("traceparent", PARENT)]) as span:
        assert span is None
    assert tracing.start("x") is None
    with tracing.consumed("role", [([("traceparent", PARENT)], {})]) as spans:
        assert spans == []


@pytest.mark.parametrize(
    "value",
    [
        b"00-zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-00f067aa0ba902b7-01",
        b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        b"00-4bf92f3577b34da6a3ce929d0e0e4736",
        b"",
        b"\xff\xfe not text",
    ],
)
def test_a_malformed_context_is_no_parent(value: bytes) -> None:
    assert tracing.parent_of([("traceparent", value)]) is None
    assert tracing.trace_id_of([("traceparent", value)]) is None


def test_a_valid_context_names_its_trace() -> None:
    assert tracing.trace_id_of([("x", b"y"), ("traceparent", PARENT)]) == TRACE_ID
    assert tracing.parent_of({"traceparent": PARENT.decode()}) is not None
    assert tracing.parent_of([]) is None


def test_on_a_span_continues_the_record_s_trace_and_replaces_its_headers(
    on: InMemorySpanExporter,
) -> None:
    source = [("event_id", b"1"), ("traceparent", PARENT), ("tracestate", b"v=1")]
    with tracing.span("work", parent=source) as span:
        assert span is not None
        assert tracing.current_trace_id() == TRACE_ID
        ids = tracing.current_ids()
        assert ids is not None and ids[0] == TRACE_ID
        assert tracing.exemplar() == {"trace_id": TRACE_ID, "span_id": ids[1]}
        out = tracing.with_context([("event_id", b"1"), ("traceparent", b"old")])
    names = [name for name, _ in out]
    assert names == ["event_id", "traceparent", "tracestate"]
    traceparent = dict(out)["traceparent"].decode().split("-")
    assert traceparent[1] == TRACE_ID and traceparent[2] != "00f067aa0ba902b7"
    assert dict(out)["tracestate"] == b"v=1"


def test_on_a_failed_block_marks_every_consumer_span_failed(on: InMemorySpanExporter) -> None:
    with (
        pytest.raises(RuntimeError),
        tracing.consumed("role", [([("traceparent", PARENT)], {})]),
    ):
        raise RuntimeError("boom")
    (span,) = on.get_finished_spans()
    assert span.name == "role process" and span.status.status_code.name == "ERROR"
    assert span.parent is not None and format(span.parent.span_id, "016x") == "00f067aa0ba902b7"


def test_the_parent_of_an_event_whose_record_lost_its_headers_comes_from_its_trace_id(
    on: InMemorySpanExporter,
) -> None:
    parent = tracing.parent_for(TRACE_ID, "e-1")
    assert parent is not None
    assert tracing.trace_id_of(parent) == TRACE_ID
    assert tracing.parent_for(TRACE_ID, "e-1") == parent  # the same event, the same parent
    assert tracing.parent_for(None, "e-1") is None
    record = [("traceparent", PARENT)]
    assert tracing.parent_for("0" * 31 + "1", "e-1", record) == record
    with tracing.span("request", parent=record):
        assert tracing.parent_for(TRACE_ID, "e-1") is None  # the current span: in its trace
        other = tracing.parent_for("0" * 31 + "1", "e-1")  # another trace: not a child of it
        assert other is not None and tracing.trace_id_of(other) == "0" * 31 + "1"


def test_the_trace_id_in_metadata_is_encoded_only_when_set() -> None:
    event = Event("6f0c3c52-5c1e-4a8a-9d0e-2f2d8b9c1a10", "order", "o-1", "OrderPaid", {})
    assert b"trace_id" not in encode(event)  # envelopes as before tracing
    traced = Event(event.id, "order", "o-1", "OrderPaid", {}, metadata=Metadata(trace_id=TRACE_ID))
    assert decode(encode(traced)).metadata.trace_id == TRACE_ID
    old = orjson.loads(encode(event))
    assert decode(orjson.dumps(old)).metadata.trace_id is None  # old events still decode


@pytest.mark.parametrize(
    "value", ["", "4BF92F3577B34DA6A3CE929D0E0E4736", TRACE_ID[:-1], TRACE_ID + "0", 7, [TRACE_ID]]
)
def test_a_malformed_trace_id_in_metadata_is_refused(value: object) -> None:
    with pytest.raises(InvalidEnvelope, match=r"metadata\.trace_id"):
        metadata_of({"trace_id": value})


async def test_a_dead_letter_s_replay_links_to_the_trace_of_the_event_that_failed(
    on: InMemorySpanExporter,
) -> None:
    from tests.console.dead_letters import EVENT, Commands, letter, replayer
    from workers.adapters.memory import MemoryActionLog
    from workers.roles.ops.dlq_replay import draft, entry_of

    record = letter(encode(EVENT))
    record = Record(record.topic, record.partition, record.offset, record.key, record.value,
                    [*record.headers, ("traceparent", PARENT), ("tracestate", b"v=1")])  # fmt: skip
    entry = entry_of(record)
    assert entry.context == (("traceparent", PARENT), ("tracestate", b"v=1"))
    commands = Commands()
    fixed = {**draft(entry), "data": {"items": [{"sku": "a", "qty": 1, "price": 1.0}]}}
    await replayer(commands, MemoryActionLog()).replay(entry, fixed, operator="alice")
    (span,) = [s for s in on.get_finished_spans() if s.name == "dead letter replay"]
    (link,) = span.links
    assert format(link.context.trace_id, "032x") == TRACE_ID
    assert format(span.context.trace_id, "032x") != TRACE_ID  # a new command: its own trace
    assert span.attributes is not None and span.attributes["eventfleet.operator"] == "alice"
    assert len(commands.requests) == 1


def test_a_dead_letter_without_context_keeps_none() -> None:
    from tests.console.dead_letters import EVENT, letter
    from workers.roles.ops.dlq_replay import entry_of

    assert entry_of(letter(encode(EVENT))).context == ()


UNSAMPLED = f"00-{TRACE_ID}-00f067aa0ba902b7-00".encode()


def test_an_unsampled_record_gets_no_span_and_passes_its_context_on(
    on: InMemorySpanExporter,
) -> None:
    assert tracing.sampled([("traceparent", UNSAMPLED)]) is False
    assert tracing.sampled([("traceparent", PARENT)]) is True
    assert tracing.sampled([("traceparent", b"garbage")]) is None
    records = [([("traceparent", UNSAMPLED)], {}), ([("traceparent", PARENT)], {})]
    with tracing.consumed("role", records) as spans:
        assert spans[0] is None and spans[1] is not None
    assert [s.name for s in on.get_finished_spans()] == ["role process"]
    carried = tracing.carried([("event_id", b"1")], [("traceparent", UNSAMPLED)])
    assert carried == [("event_id", b"1"), ("traceparent", UNSAMPLED)]  # the flag stays 00
    with tracing.span("request", parent=[("traceparent", UNSAMPLED)]):
        assert not tracing.recording()
        assert tracing.current_trace_id() is None  # no stored event names an unkept trace
        assert tracing.exemplar() is None  # a dashboard would link to a trace nobody kept
        assert dict(tracing.with_context([]))["traceparent"].endswith(b"-00")
