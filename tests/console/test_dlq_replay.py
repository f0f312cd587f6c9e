"""The replay logic alone: dead-letter entries, submissions, the derived command id, the audit."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from tests.console.dead_letters import EVENT, STORED, Commands, letter, replayer
from topics.envelope import derived_event_id, encode
from topics.errors import InvalidInput, NotFound, StoreUnavailable
from workers.adapters.memory import MemoryActionLog
from workers.ports import Record
from workers.roles.deadletter import MAX_OPERATOR, check_operator
from workers.roles.ops.dlq_replay import (
    draft,
    entries_of,
    entry_of,
    find_entry,
    parse_position,
    parse_submission,
)
from workers.roles.outcomes import Accepted, Refused


def test_an_entry_carries_its_reason_origin_and_event() -> None:
    entry = entry_of(letter(encode(EVENT)))
    assert (entry.position, entry.reason, entry.source, entry.role) == (
        "0/3", "invalid_data", "t.events/1/7", "appender",
    )  # fmt: skip
    assert entry.detail == "items must not be empty"
    assert entry.event is not None and entry.event.id == EVENT.id
    assert entry.source_topic == "t.events"
    assert entry.command_id == f"dlq-replay:{EVENT.id}"
    assert entry.as_dict()["aggregate_id"] == "o-1"


def test_bytes_that_are_no_event_are_an_entry_named_by_their_source() -> None:
    entry = entry_of(letter(b"\x00garbage", reason="undecodable"))
    assert entry.event is None
    assert entry.command_id == "dlq-replay:t.events/1/7"
    # Its key still names the aggregate: the template starts from it.
    assert draft(entry) == {
        "aggregate_type": "order",
        "aggregate_id": "o-1",
        "type": "",
        "data": {},
    }
    bare = entry_of(Record("t.events.dlq", 2, 9, None, b"x"))  # no headers at all
    assert draft(bare) == {"aggregate_type": "", "aggregate_id": "", "type": "", "data": {}}
    assert (bare.reason, bare.command_id) == ("unknown", "dlq-replay:2/9")


def test_positions_are_parsed_strictly_and_found_or_not() -> None:
    assert parse_position("0/12") == (0, 12)
    assert parse_position("3:4") == (3, 4)
    for bad in ("", "0", "a/1", "1/-2", "1/2/3", "/1", "1/", "²/1", "1" * 41 + "/1"):
        with pytest.raises(InvalidInput, match="<partition>/<offset>"):
            parse_position(bad)
    entries = entries_of([letter(b"x", offset=5), letter(b"y", offset=1)])
    assert [e.offset for e in entries] == [1, 5]
    assert find_entry(entries, "0/5").value == b"x"
    with pytest.raises(NotFound, match="no entry 0/6"):
        find_entry(entries, "0/6")


GOOD = {"aggregate_type": "order", "aggregate_id": "o-1", "type": "OrderPlaced", "data": {"a": 1}}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{", "not valid JSON"),
        (b"[]", "must be a JSON object"),
        (orjson.dumps({**GOOD, "version": 3}), "unknown fields version"),
        (orjson.dumps({"type": "X", "data": {}}), "missing fields aggregate_type, aggregate_id"),
        (orjson.dumps({**GOOD, "type": ""}), "'type' must be a non-empty string"),
        (orjson.dumps({**GOOD, "aggregate_id": 7}), "'aggregate_id' must be a non-empty string"),
        (orjson.dumps({**GOOD, "data": [1]}), "'data' must be a JSON object"),
        (b" " * 70000, "the limit is 65536"),
    ],
)
def test_a_bad_submission_is_refused_naming_what_is_wrong(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_submission(raw, max_bytes=65536)


def test_operator_names_are_bounded_and_printable() -> None:
    assert check_operator("  alice ") == "alice"
    assert check_operator("x" * MAX_OPERATOR) == "x" * MAX_OPERATOR  # as long as a principal
    for bad in ("", "   ", "x" * (MAX_OPERATOR + 1), "bob\nmallory"):
        with pytest.raises(InvalidInput, match=r"operator name .* who replays"):
            check_operator(bad)
        with pytest.raises(InvalidInput, match=r"operator name .* who retries"):
            check_operator(bad, "retries")  # a stuck process instance's retry


async def test_a_replay_submits_the_fixed_event_once_with_a_derived_command_id() -> None:
    commands, log = Commands(), MemoryActionLog()
    entry = entry_of(letter(encode(EVENT)))
    fixed = {**draft(entry), "data": {"items": [{"sku": "a", "qty": 1, "price": 1.0}]}}
    action = await replayer(commands, log).replay(entry, fixed, operator="alice")
    [request] = commands.requests
    assert (request.aggregate_type, request.aggregate_id, request.type) == (
        "order", "o-1", "OrderPlaced",
    )  # fmt: skip
    assert request.data == fixed["data"]
    assert request.command_id == f"dlq-replay:{EVENT.id}"
    assert request.causation_id == EVENT.id and request.client_id == "eventfleet-console"
    # the id the store will give it: the same for every replay of this dead letter
    again = await replayer(commands, log).replay(entry, fixed, operator="bob")
    assert commands.requests[1].command_id == request.command_id
    assert derived_event_id("order", "o-1", request.command_id) == derived_event_id(
        "order", "o-1", commands.requests[1].command_id or ""
    )
    assert [a.operator for a in await log.recent(limit=10)] == ["bob", "alice"]
    assert (action.status, action.result, action.target, action.via) == (
        202, {"event_id": "e"}, "0/3", "console",
    )  # fmt: skip
    assert action.submitted == {**fixed, "command_id": request.command_id}
    assert action.at == datetime(2026, 1, 2, tzinfo=UTC) and again.id != action.id


async def test_a_refusal_by_the_command_path_is_audited_with_its_answer() -> None:
    refused = Refused("invalid_data", "items must not be empty")
    commands, log = Commands(refused), MemoryActionLog()
    entry = entry_of(letter(encode(EVENT)))
    action = await replayer(commands, log).replay(entry, draft(entry), operator="alice")
    assert action.status == 422 and await log.recent(limit=10) == [action]


async def test_a_failing_command_path_is_audited_as_a_failure() -> None:
    commands, log = Commands(StoreUnavailable("MongoDB did not answer")), MemoryActionLog()
    entry = entry_of(letter(encode(EVENT)))
    action = await replayer(commands, log).replay(entry, draft(entry), operator="alice")
    assert action.status == 500 and "MongoDB did not answer" in action.result["message"]
    assert await log.recent(limit=10) == [action]


async def test_what_cannot_be_a_command_is_refused_before_anything_is_submitted() -> None:
    commands, log = Commands(), MemoryActionLog()
    stored = entry_of(letter(encode(EVENT.with_version(1)), source=f"{STORED}/0/4"))
    with pytest.raises(InvalidInput, match="already stored"):
        await replayer(commands, log).replay(stored, draft(stored), operator="alice")
    entry = entry_of(letter(encode(EVENT)))
    bad_id: dict[str, Any] = {**draft(entry), "aggregate_id": "no spaces allowed"}
    with pytest.raises(InvalidInput, match="aggregate id"):
        await replayer(commands, log).replay(entry, bad_id, operator="alice")
    with pytest.raises(InvalidInput, match="operator"):
        await replayer(commands, log).replay(entry, draft(entry), operator="")
    stuck = entry_of(letter(b'{"process": "p", "key": "o-1"}', source="process:p/0/0",
                            reason="process_stuck", role="pm"))  # fmt: skip
    with pytest.raises(InvalidInput, match="retry the instance"):
        await replayer(commands, log).replay(stuck, draft(stuck), operator="alice")
    assert commands.requests == [] and await log.recent(limit=10) == []


async def test_a_dead_letter_replayed_again_differently_applies_nothing_and_names_the_first() -> (
    None
):
    """Its identity is its entry: aimed at another aggregate, or with other data, nothing more."""
    commands, log = Commands(), MemoryActionLog()
    entry = entry_of(letter(encode(EVENT)))
    fixed = {**draft(entry), "data": {"items": [{"sku": "a", "qty": 1, "price": 1.0}]}}
    first = await replayer(commands, log).replay(entry, fixed, operator="alice")
    assert first.status == 202
    for change in (
        {"aggregate_id": "o-2"},
        {"data": {"items": [{"sku": "b", "qty": 2, "price": 1.0}]}},
    ):
        other = await replayer(commands, log).replay(entry, {**fixed, **change}, operator="bob")
        assert (other.status, other.result["error"]) == (409, "already_replayed")
        told = other.result["first_replay"]
        assert (told["operator"], told["status"], told["result"]) == (
            "alice",
            202,
            {"event_id": "e"},
        )
        assert "replayed by alice" in other.result["message"]
    assert len(commands.requests) == 1  # only the first reached the command path
    same = await replayer(commands, log).replay(entry, fixed, operator="carol")
    assert same.status == 202 and len(commands.requests) == 2  # the same command: stored once
    assert [a.status for a in await log.recent(limit=10)] == [202, 409, 409, 202]


async def test_two_replays_of_one_entry_at_once_submit_at_most_the_same_command() -> None:
    commands, log = Commands(), MemoryActionLog()
    entry = entry_of(letter(encode(EVENT)))
    one = {**draft(entry), "data": {"items": [{"sku": "a", "qty": 1, "price": 1.0}]}}
    two = {**one, "aggregate_id": "o-elsewhere"}
    actions = await asyncio.gather(
        replayer(commands, log).replay(entry, one, operator="alice"),
        replayer(commands, log).replay(entry, two, operator="bob"),
    )
    assert sorted(a.status for a in actions) == [202, 409]
    assert len({(r.aggregate_id, r.command_id) for r in commands.requests}) == 1


async def test_a_refused_replay_leaves_the_entry_free_for_a_corrected_fix() -> None:
    refused = Refused("invalid_data", "items must not be empty")
    commands, log = Commands(refused), MemoryActionLog()
    entry = entry_of(letter(encode(EVENT)))
    assert (
        await replayer(commands, log).replay(entry, draft(entry), operator="alice")
    ).status == 422
    commands.answer = Accepted("e")
    fixed = {**draft(entry), "data": {"items": [{"sku": "a", "qty": 1, "price": 1.0}]}}
    assert (await replayer(commands, log).replay(entry, fixed, operator="alice")).status == 202
