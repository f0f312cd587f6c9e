"""Traces across the fleet, exported over real OTLP/HTTP to a receiver the test starts.

One POST is one trace: the HTTP request, the commands role's produce, the appender's store,
the snapshotter and the forwarder; the context rides in the record headers and the stored
event's metadata names the trace. Tracing off changes nothing on the topics.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import AsyncIterator

import orjson
import pytest

from tests.e2e.live_clients import sse
from tests.fleet import FleetProcess, order_items, running_fleet, start_together
from tests.kafka_topics import produce_raw, read_until
from tests.otlp_receiver import ReceivedSpan, Receiver, otlp_receiver, traced_env, tree
from tests.waiting import wait_for
from topics.envelope import decode
from workers.devtools.embedded import EmbeddedStack

OLD_HEADERS = {"event_id", "event_type", "client_id", "command_id", "correlation_id",
               "causation_id", "command_scope",
               "eventfleet-event-id", "eventfleet-version", "eventfleet-part"}  # fmt: skip
"""Every header a record carries without tracing (the last three: a downstream record's
position, by which the forwarder writes each stored event once)."""


TRACE_UI = "https://traces.example/trace/{trace_id}?from=console"


def new_traceparent() -> tuple[str, str]:
    trace_id = secrets.token_hex(16)
    return trace_id, f"00-{trace_id}-{secrets.token_hex(8)}-01"


async def post(
    fleet: FleetProcess, order_id: str, headers: dict[str, str], event_type: str = "OrderPlaced"
) -> dict[str, object]:
    data = {"items": order_items()} if event_type == "OrderPlaced" else {"amount": 5.0}
    status, body = await fleet.request(
        "POST", f"/v1/order/{order_id}/events", {"type": event_type, "data": data},
        headers={**fleet.auth_headers, **headers},
    )  # fmt: skip
    assert status == 202, body
    return dict(body)


async def spans_named(
    receiver: Receiver, trace_id: str, names: set[str], timeout_s: float = 30
) -> list[ReceivedSpan]:
    async def arrived() -> bool:
        return names <= {s.name for s in receiver.trace(trace_id)}

    await wait_for(arrived, timeout_s=timeout_s, what=f"spans {sorted(names)} of {trace_id}")
    return receiver.trace(trace_id)


async def stored_metadata(fleet: FleetProcess, order_id: str) -> dict[str, object]:
    async def stored() -> bool:
        status, body = await fleet.get(f"/v1/order/{order_id}/events")
        return status == 200 and len(body["events"]) == 1

    await wait_for(stored, timeout_s=30, what=f"order {order_id} stored")
    _, body = await fleet.get(f"/v1/order/{order_id}/events")
    return dict(body["events"][0]["metadata"])


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[Receiver]:
    async with otlp_receiver() as started:
        yield started


@pytest.fixture(scope="module")
async def traced(stack: EmbeddedStack, receiver: Receiver) -> AsyncIterator[FleetProcess]:
    name = f"tr_{uuid.uuid4().hex[:8]}"
    env = {
        **traced_env(receiver),
        "EVENTFLEET_LOG_FORMAT": "json",
        "EVENTFLEET_TRACE_URL_TEMPLATE": TRACE_UI,
    }
    async with running_fleet(stack, name, **env) as fleet:
        yield fleet


async def test_one_post_is_one_trace_through_every_hop(
    traced: FleetProcess, receiver: Receiver
) -> None:
    trace_id, parent = new_traceparent()
    order_id = f"o-{uuid.uuid4().hex[:8]}"
    answer = await post(traced, order_id, {"traceparent": parent, "tracestate": "vendor=1"})
    spans = await spans_named(
        receiver, trace_id,
        {"POST /v1/{aggregate_type}/{aggregate_id}/events", f"{traced.prefix}events publish",
         "appender store", "snapshotter process", "forwarder process"},
    )  # fmt: skip
    print(f"\ntrace {trace_id}:\n{tree(spans)}")
    by_name = {s.name: s for s in spans}
    server = by_name["POST /v1/{aggregate_type}/{aggregate_id}/events"]
    assert server.parent_span_id == parent.split("-")[2]  # the caller's span is its parent
    produce = by_name[f"{traced.prefix}events publish"]
    store = by_name["appender store"]
    assert produce.parent_span_id == server.span_id
    assert store.parent_span_id == produce.span_id  # continued through the Kafka header
    assert store.attributes["eventfleet.event_id"] == answer["event_id"]
    for role in ("snapshotter", "forwarder"):
        assert by_name[f"{role} process"].parent_span_id == store.span_id
    assert server.attributes["resource.service.name"] == "eventfleet-all"

    metadata = await stored_metadata(traced, order_id)
    assert metadata["trace_id"] == trace_id

    records = await read_until(
        traced.env["EVENTFLEET_KAFKA_URL"], f"{traced.prefix}orders", expect=1,
        where=lambda r: decode(r.value).aggregate_id == order_id,
    )  # fmt: skip
    ours = [r for r in records if decode(r.value).aggregate_id == order_id]
    headers = dict(ours[0].headers)
    assert headers["traceparent"].decode().split("-")[1] == trace_id
    assert headers["tracestate"] == b"vendor=1"  # the caller's trace state travels with it


async def test_a_request_without_context_starts_its_own_trace(
    traced: FleetProcess, receiver: Receiver
) -> None:
    order_id = f"o-{uuid.uuid4().hex[:8]}"
    answer = await post(traced, order_id, {})
    metadata = await stored_metadata(traced, order_id)
    trace_id = str(metadata["trace_id"])
    spans = await spans_named(receiver, trace_id, {"appender store"})
    root = [s for s in spans if s.parent_span_id == ""]
    assert [s.name for s in root] == ["POST /v1/{aggregate_type}/{aggregate_id}/events"]
    store = next(s for s in spans if s.name == "appender store")
    assert store.attributes["eventfleet.event_id"] == answer["event_id"]


@pytest.mark.parametrize(
    "traceparent",
    [
        "00-zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-00f067aa0ba902b7-01",  # not hex
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # the invalid trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # the invalid span id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # a forbidden version
        "00-4bf92f3577b34da6a3ce929d0e0e4736",  # cut short
        "\u00e9" * 55,  # not ASCII
    ],
)
async def test_a_malformed_traceparent_is_ignored_and_a_new_trace_starts(
    traced: FleetProcess, receiver: Receiver, traceparent: str
) -> None:
    order_id = f"o-{uuid.uuid4().hex[:8]}"
    await post(traced, order_id, {"traceparent": traceparent})  # never a 4xx
    metadata = await stored_metadata(traced, order_id)
    trace_id = str(metadata["trace_id"])
    assert trace_id not in traceparent
    spans = await spans_named(receiver, trace_id, {"appender store"})
    server = next(s for s in spans if s.name.startswith("POST "))
    assert server.parent_span_id == ""  # a root: nothing of the malformed context was kept


async def test_a_dead_lettered_event_s_span_says_why(
    traced: FleetProcess, receiver: Receiver
) -> None:
    trace_id, parent = new_traceparent()
    await produce_raw(
        traced.env["EVENTFLEET_KAFKA_URL"], f"{traced.prefix}events",
        [(b"order:o-bad", b"{not an envelope", [("traceparent", parent.encode())])],
    )  # fmt: skip
    spans = await spans_named(receiver, trace_id, {"appender dead letter"})
    letter = next(s for s in spans if s.name == "appender dead letter")
    assert letter.parent_span_id == parent.split("-")[2]
    assert letter.status_code == 2  # error
    assert letter.status_message.startswith("undecodable: ")
    assert letter.attributes["eventfleet.reason"] == "undecodable"
    records = await read_until(
        traced.env["EVENTFLEET_KAFKA_URL"], f"{traced.prefix}events.dlq", expect=1,
        where=lambda r: ("traceparent", parent.encode()) in r.headers,
    )  # fmt: skip
    # The dead letter keeps the context of the record that failed.
    assert any(("traceparent", parent.encode()) in r.headers for r in records)


async def test_a_sigkilled_appender_s_replacement_continues_the_traces(
    stack: EmbeddedStack, receiver: Receiver, unique_name: str
) -> None:
    env = traced_env(receiver)
    commands = FleetProcess.for_stack(stack, unique_name, roles="commands", **env)
    appender = FleetProcess.for_stack(stack, unique_name, roles="appender", **env)
    await start_together(commands, appender)
    try:
        await appender.killed()  # SIGKILL: what it had buffered is lost with it
        sent = []
        for _ in range(3):
            trace_id, parent = new_traceparent()
            order_id = f"o-{uuid.uuid4().hex[:8]}"
            answer = await post(commands, order_id, {"traceparent": parent})
            sent.append((trace_id, order_id, answer["event_id"]))
        replacement = FleetProcess.for_stack(stack, unique_name, roles="appender", **env)
        await replacement.start()
        try:
            for trace_id, order_id, event_id in sent:
                spans = await spans_named(receiver, trace_id, {"appender store"})
                store = next(s for s in spans if s.name == "appender store")
                produce = next(s for s in spans if s.name.endswith("events publish"))
                assert store.parent_span_id == produce.span_id
                assert store.attributes["eventfleet.event_id"] == event_id
                assert store.attributes["resource.service.name"] == "eventfleet-appender"
                assert (await stored_metadata(commands, order_id))["trace_id"] == trace_id
        finally:
            assert await replacement.stop() == 0, replacement.log_tail()
    finally:
        assert await commands.stop() == 0, commands.log_tail()


async def test_tracing_off_adds_no_header_and_no_metadata(
    stack: EmbeddedStack, receiver: Receiver, unique_name: str
) -> None:
    # OTEL_* variables that name no endpoint do not turn tracing on.
    assert not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    env = {"OTEL_SERVICE_NAME": "untraced", "OTEL_TRACES_SAMPLER": "always_on"}
    before = len(receiver.spans)
    async with running_fleet(stack, unique_name, **env) as fleet:
        trace_id, parent = new_traceparent()
        order_id = f"o-{uuid.uuid4().hex[:8]}"
        await post(fleet, order_id, {"traceparent": parent})
        metadata = await stored_metadata(fleet, order_id)
        assert "trace_id" not in metadata
        kafka = fleet.env["EVENTFLEET_KAFKA_URL"]
        for topic in ("events", "events.stored", "orders"):
            records = await read_until(
                kafka, f"{fleet.prefix}{topic}", expect=1,
                where=lambda r: decode(r.value).aggregate_id == order_id,
            )  # fmt: skip
            ours = [r for r in records if decode(r.value).aggregate_id == order_id]
            assert ours, topic
            for record in ours:
                assert {name for name, _ in record.headers} <= OLD_HEADERS, topic
                assert b"trace" not in record.value, topic  # the envelope as before
    assert receiver.trace(trace_id) == []
    assert not [s for s in receiver.spans[before:] if s.service == "untraced"]


async def test_json_log_lines_written_inside_a_span_name_its_trace(
    traced: FleetProcess, receiver: Receiver
) -> None:
    trace_id, parent = new_traceparent()
    await produce_raw(
        traced.env["EVENTFLEET_KAFKA_URL"], f"{traced.prefix}events",
        [(b"order:o-bad", b"\xff\xfe", [("traceparent", parent.encode())])],
    )  # fmt: skip
    letter = (await spans_named(receiver, trace_id, {"appender dead letter"}))[0]

    def lines() -> list[dict[str, object]]:
        text = traced.log_path.read_text(errors="replace")
        return [orjson.loads(line) for line in text.splitlines() if line.strip()]

    async def logged() -> bool:
        return any(line.get("trace_id") == trace_id for line in lines())

    await wait_for(logged, timeout_s=10, what="the dead letter's log line")
    every = lines()  # every line of the process is one JSON object
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in every)
    ours = [line for line in every if line.get("trace_id") == trace_id]
    assert ours[0]["span_id"] == letter.span_id
    assert "dead-lettered" in str(ours[0]["message"])
    assert any("trace_id" not in line for line in every)  # lines outside a span name none


async def test_the_command_latency_histogram_carries_exemplars(
    traced: FleetProcess, receiver: Receiver
) -> None:
    trace_id, parent = new_traceparent()
    await post(traced, f"o-{uuid.uuid4().hex[:8]}", {"traceparent": parent})
    status, text = await traced.request(
        "GET",
        "/metrics",
        headers={**traced.auth_headers, "Accept": "application/openmetrics-text; version=1.0.0"},
    )
    assert status == 200 and isinstance(text, str)
    exemplars = [
        line for line in text.splitlines()
        if line.startswith("eventfleet_command_latency_seconds_bucket") and " # {" in line
    ]  # fmt: skip
    assert any(f'trace_id="{trace_id}"' in line for line in exemplars), exemplars[:3]
    assert text.rstrip().endswith("# EOF")
    status, plain = await traced.request("GET", "/metrics", headers=traced.auth_headers)
    assert status == 200 and f'trace_id="{trace_id}"' not in str(plain)  # the classic text


async def test_the_console_timeline_links_each_event_to_its_trace(
    traced: FleetProcess, receiver: Receiver
) -> None:
    trace_id, parent = new_traceparent()
    order_id = f"o-{uuid.uuid4().hex[:8]}"
    await post(traced, order_id, {"traceparent": parent})
    await stored_metadata(traced, order_id)
    status, html = await traced.get(f"/console/aggregates/order/{order_id}")
    assert status == 200
    href = TRACE_UI.replace("{trace_id}", trace_id).replace("&", "&amp;")
    assert f'<a class="trace" href="{href}"><code>{trace_id}</code></a>' in html


async def test_live_delivery_continues_the_trace(traced: FleetProcess, receiver: Receiver) -> None:
    order_id = f"o-{uuid.uuid4().hex[:8]}"
    first_trace, parent = new_traceparent()
    await post(traced, order_id, {"traceparent": parent})
    await stored_metadata(traced, order_id)
    client = await sse(
        f"{traced.url}/v1/order/{order_id}/subscribe?after_version=1", headers=traced.auth_headers
    )
    try:
        assert client.status == 200
        trace_id, parent = new_traceparent()
        await post(traced, order_id, {"traceparent": parent}, event_type="OrderPaid")

        async def delivered() -> bool:
            return client.versions() == [2]

        await wait_for(delivered, timeout_s=30, what="the live event")
        spans = await spans_named(receiver, trace_id, {"live deliver"})
        live = next(s for s in spans if s.name == "live deliver")
        assert live.attributes["eventfleet.delivery"] in ("aggregate", "push")
        store = next(s for s in spans if s.name == "appender store")
        assert live.end_ns >= store.start_ns
        assert receiver.trace(first_trace)  # the stored page read first is not "live"
        assert not [s for s in receiver.trace(first_trace) if s.name == "live deliver"]
    finally:
        await client.close()


async def test_sync_mode_is_one_trace_from_the_request_to_events_stored(
    traced: FleetProcess, receiver: Receiver
) -> None:
    trace_id, parent = new_traceparent()
    account = f"acc-{uuid.uuid4().hex[:8]}"
    status, body = await traced.request(
        "POST", f"/v1/account/{account}/events", {"type": "AccountOpened", "data": {"owner": "ada"}},
        headers={**traced.auth_headers, "traceparent": parent},
    )  # fmt: skip
    assert status == 201, body
    publish = f"{traced.prefix}events.stored publish"
    spans = await spans_named(receiver, trace_id, {publish, "snapshotter process"})
    by_name = {s.name: s for s in spans}
    server = next(s for s in spans if s.name.startswith("POST "))
    assert server.parent_span_id == parent.split("-")[2]
    assert by_name[publish].parent_span_id == server.span_id  # stored and published inline
    assert by_name["snapshotter process"].parent_span_id == by_name[publish].span_id
    _, events = await traced.get(f"/v1/account/{account}/events")
    assert events["events"][0]["metadata"]["trace_id"] == trace_id


async def test_one_order_across_a_process_per_role_is_one_trace(
    stack: EmbeddedStack, receiver: Receiver, unique_name: str
) -> None:
    env = traced_env(receiver)
    roles = ("commands", "appender", "snapshotter", "forwarder")
    fleet = [FleetProcess.for_stack(stack, unique_name, roles=r, **env) for r in roles]
    await start_together(*fleet)
    try:
        commands = fleet[0]
        trace_id, parent = new_traceparent()
        order_id = f"o-{uuid.uuid4().hex[:8]}"
        await post(commands, order_id, {"traceparent": parent})
        spans = await spans_named(
            receiver, trace_id, {"appender store", "snapshotter process", "forwarder process"}
        )
        print(f"\none order, a process per role, trace {trace_id}:\n{tree(spans)}")
        services = {s.name: s.attributes["resource.service.name"] for s in spans}
        assert services["appender store"] == "eventfleet-appender"
        assert services["snapshotter process"] == "eventfleet-snapshotter"
        assert services["forwarder process"] == "eventfleet-forwarder"
        assert {v for k, v in services.items() if k.startswith("POST ")} == {"eventfleet-commands"}
        assert len({s.span_id for s in spans}) == len(spans)
    finally:
        for process in reversed(fleet):
            assert await process.stop() == 0, process.log_tail()


async def test_an_unsampled_request_makes_no_span_and_its_context_still_travels(
    traced: FleetProcess, receiver: Receiver
) -> None:
    trace_id = secrets.token_hex(16)
    order_id = f"o-{uuid.uuid4().hex[:8]}"
    await post(traced, order_id, {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-00"})
    metadata = await stored_metadata(traced, order_id)
    assert "trace_id" not in metadata  # only a kept trace is named
    records = await read_until(
        traced.env["EVENTFLEET_KAFKA_URL"], f"{traced.prefix}orders", expect=1,
        where=lambda r: decode(r.value).aggregate_id == order_id,
    )  # fmt: skip
    (record,) = [r for r in records if decode(r.value).aggregate_id == order_id]
    traceparent = dict(record.headers)["traceparent"].decode().split("-")
    assert traceparent[1] == trace_id and traceparent[3] == "00"  # the caller's choice kept
    # A later, sampled request's spans arrive: by then none of the unsampled one has.
    later, parent = new_traceparent()
    await post(traced, f"o-{uuid.uuid4().hex[:8]}", {"traceparent": parent})
    await spans_named(receiver, later, {"appender store", "forwarder process"})
    assert receiver.trace(trace_id) == []
