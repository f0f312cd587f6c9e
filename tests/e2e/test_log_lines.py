"""No input forges a log line (issue 46), on a running fleet: ids with control characters are
refused at every door (HTTP appends, the ``commands`` topic, the ``events`` topic), and a record
header that reaches a log line (an invalid ``tracestate``, which OpenTelemetry warns about with
the member as it came) is written escaped: the fleet's own log file holds no line of the
sender's choosing, in the text format (the default) and in JSON.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.fleet import FleetProcess, order_items, running_fleet
from tests.kafka_topics import produce_raw, read_until
from tests.otlp_receiver import otlp_receiver, traced_env
from tests.tokens import TESTER, TESTER_ROLES
from tests.waiting import wait_for
from topics.envelope import Actor, Metadata, aggregate_key, encode, new_event
from workers.devtools.embedded import EmbeddedStack

FORGED = "2001-01-01 00:00:00.000 CRITICAL workers.door: admin signed in"
"""The line a hostile sender wants in the log: a record of its choosing, in the text format (no
comma: a ``tracestate`` is split at commas before OpenTelemetry names the member it refuses)."""
BREAKS = ("\n", "\r", "\u2028", "\u2029", "\x85", "\x0b", "\x1b[2J", "\t", "\x00")
IDS = ("client_id", "command_id", "correlation_id", "causation_id")
RECORD_START = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ +[\w.]+: ")


@pytest.fixture(scope="module")
async def fleet(stack: EmbeddedStack) -> AsyncIterator[FleetProcess]:
    """Every role, traced (so the roles read each record's trace headers), logging as text."""
    async with otlp_receiver() as receiver:
        name = f"logs_{uuid.uuid4().hex[:8]}"
        async with running_fleet(stack, name, **traced_env(receiver)) as process:
            yield process


def hostile_trace_headers(forged: str = FORGED) -> list[tuple[str, bytes]]:
    """A valid ``traceparent`` and a ``tracestate`` whose member carries a line of its own."""
    parent = f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"
    return [("traceparent", parent.encode()), ("tracestate", f"k=v\n{forged}".encode())]


async def produce(fleet: FleetProcess, topic: str, key: bytes, value: bytes,
                  headers: list[tuple[str, bytes]]) -> None:  # fmt: skip
    kafka, records = fleet.env["EVENTFLEET_KAFKA_URL"], [(key, value, headers)]
    await produce_raw(kafka, f"{fleet.prefix}{topic}", records)


async def test_ids_with_control_characters_are_refused_at_the_http_door(
    fleet: FleetProcess,
) -> None:
    order = f"door-{uuid.uuid4().hex[:8]}"
    body: dict[str, Any] = {"type": "OrderPlaced", "data": {"items": order_items()}}
    for name in IDS:
        for char in BREAKS:
            status, answer = await fleet.post(
                f"/v1/order/{order}/events", {**body, name: f"x{char}{FORGED}"}
            )
            assert status == 400 and answer["error"] == "bad_request", answer
            assert (
                f"field {name!r} holds a control character ({char[0]!r} at position 1)"
                in (answer["message"])
            )
    status, answer = await fleet.get(f"/v1/order/{order}/events")
    assert status == 404, answer  # nothing of them was written
    for path in (f"{order}%0A", f"{order}%E2%80%A8", f"{order}%0D%0A{FORGED}"):
        status, answer = await fleet.post(f"/v1/order/{path}/events", body)
        assert status == 400 and answer["error"] == "bad_request", answer
    status, answer = await fleet.post(
        f"/v1/order/{order}/events", {**body, **{name: f"printable {name}" for name in IDS}}
    )
    assert status == 202, answer  # the same body with printable ids: accepted


async def test_hostile_records_are_refused_or_dead_lettered_and_the_log_holds_them_escaped(
    fleet: FleetProcess,
) -> None:
    run = uuid.uuid4().hex[:8]
    kafka = fleet.env["EVENTFLEET_KAFKA_URL"]
    command = {"aggregate_type": "order", "aggregate_id": f"cmd-{run}", "type": "OrderPlaced",
               "data": {"items": order_items()}}  # fmt: skip
    good_key, bad_key = aggregate_key("order", f"cmd-{run}"), aggregate_key("order", f"bad-{run}")
    await produce(fleet, "commands", good_key, orjson.dumps(command), hostile_trace_headers())
    bad = {**command, "aggregate_id": f"bad-{run}", "client_id": f"x\n{FORGED}"}
    await produce(fleet, "commands", bad_key, orjson.dumps(bad), hostile_trace_headers())
    replies = await read_until(kafka, f"{fleet.prefix}commands.replies", expect=2,
                               where=lambda r: r.key in (good_key, bad_key))  # fmt: skip
    told = {r.key: orjson.loads(r.value) for r in replies if r.key in (good_key, bad_key)}
    assert told[good_key]["status"] == 202, told  # a hostile trace header changes nothing else
    assert told[bad_key]["status"] == 400 and told[bad_key]["body"]["error"] == "invalid_command"
    assert "field 'client_id' holds a control character" in told[bad_key]["body"]["message"]

    actor = Actor(TESTER, TESTER_ROLES)
    fine = new_event("order", f"ev-{run}", "OrderPlaced", {"items": order_items()},
                     metadata=Metadata(client_id="printable", actor=actor))  # fmt: skip
    forged = new_event("order", f"evbad-{run}", "OrderPlaced", {"items": order_items()},
                       metadata=Metadata(client_id=f"x\n{FORGED}", actor=actor))  # fmt: skip
    for event in (fine, forged):
        await produce(fleet, "events", event.key, encode(event), hostile_trace_headers())
    letters = await read_until(kafka, f"{fleet.prefix}events.dlq", expect=1,
                               where=lambda r: r.key == forged.key)  # fmt: skip
    [letter] = [dict(r.headers) for r in letters if r.key == forged.key]
    assert letter["dlq_reason"] == b"invalid"
    assert (
        b"metadata.client_id holds a control character ('\\n' at position 1)"
        in (letter["dlq_detail"])
    )

    async def stored(order: str) -> bool:
        return (await fleet.get(f"/v1/order/{order}/events"))[0] == 200

    await wait_for(lambda: stored(f"cmd-{run}"), timeout_s=30, what="the command's event")
    await wait_for(lambda: stored(f"ev-{run}"), timeout_s=30, what="the topic's event stored")
    assert (await fleet.get(f"/v1/order/evbad-{run}/events"))[0] == 404  # never stored
    # Both roles read the hostile tracestate: OpenTelemetry warned, and the line is escaped.
    await wait_for(lambda: _warned(fleet.log_path) >= 2, timeout_s=30,
                   what="the tracestate warnings in the fleet's log")  # fmt: skip
    lines = fleet.log_path.read_text(errors="replace").split("\n")
    assert not [line for line in lines if line.startswith(FORGED)]  # no line of theirs
    for line in lines:
        if "admin signed in" in line:
            assert RECORD_START.match(line), line  # inside a line the fleet began
            assert f"\\n{FORGED}" in line, line
        for raw in ("\r", "\u2028", "\u2029", "\x85", "\x0b", "\x1b"):
            assert raw not in line, (raw, line)


def _warned(log: Path) -> int:
    """OpenTelemetry's warnings about the member, however they were written."""
    return log.read_text(errors="replace").count("Member doesn't match the w3c identifiers format")


async def test_the_json_format_is_one_object_a_line_whatever_a_header_holds(
    stack: EmbeddedStack,
) -> None:
    async with otlp_receiver() as receiver:
        name = f"logsj_{uuid.uuid4().hex[:8]}"
        async with running_fleet(stack, name, roles="commands", EVENTFLEET_LOG_FORMAT="json",
                                 **traced_env(receiver)) as process:  # fmt: skip
            order = f"json-{uuid.uuid4().hex[:8]}"
            command = {"aggregate_type": "order", "aggregate_id": order, "type": "OrderPlaced",
                       "data": {"items": order_items()}}  # fmt: skip
            key = aggregate_key("order", order)
            await produce(process, "commands", key, orjson.dumps(command), hostile_trace_headers())

            def warned() -> list[dict[str, Any]]:
                found = []
                for line in process.log_path.read_text(errors="replace").splitlines():
                    if line.startswith("{") and "w3c identifiers" in line:
                        found.append(orjson.loads(line))
                return found

            await wait_for(lambda: bool(warned()), timeout_s=30, what="the json warning")
            [first, *_] = warned()
            assert first["message"].endswith(f"k=v\n{FORGED}")  # the value, exactly, decoded
            text = process.log_path.read_text(errors="replace")
            assert not [ln for ln in text.splitlines() if ln.startswith(FORGED)]
