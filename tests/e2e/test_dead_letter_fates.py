"""An accepted command whose event the appender dead-letters is told so, with real services
(issue 19): a newer commands process beside an older appender (a type it does not know, a
smaller record limit), and bad bytes produced straight to the events topic. The outcome query
and a retry with the command id say ``dead_lettered`` with the reason; a mark naming the dead
event is dropped, so the next request is answered on the store; the dead letter parks its
aggregate alone (a later payment waits until the head is skipped); the stream keeps moving."""

from __future__ import annotations

import uuid
from typing import Any

from tests.cli import eventfleet
from tests.fleet import FleetProcess, order_items, start_together
from tests.kafka_topics import produce_raw
from tests.tokens import TESTER
from tests.waiting import wait_for
from topics.envelope import Actor, command_scope, derived_event_id
from workers.adapters.kafka import plain
from workers.adapters.kafka.reader import read_topic
from workers.devtools.embedded import EmbeddedStack
from workers.roles.ops.dlq_replay import DeadLetterEntry, entries_of

LIMIT = 2048  # the older appender's EVENTFLEET_MAX_EVENT_BYTES


async def parked_entries(fleet: FleetProcess, key: str, n: int) -> list[DeadLetterEntry]:
    """The first ``n`` dead-letter entries of ``key``'s parked queue, in order (waits for them)."""
    found: list[DeadLetterEntry] = []

    async def there() -> bool:
        records = await read_topic(
            plain(fleet.env["EVENTFLEET_KAFKA_URL"]), f"{fleet.prefix}events.dlq"
        )
        entries = {e.parked[1]: e for e in entries_of(records) if e.parked and e.parked[0] == key}
        found[:] = [entries[seq] for seq in sorted(entries)][:n]
        return len(found) == n

    await wait_for(there, timeout_s=60, what=f"{n} parked entries of {key}", interval_s=0.2)
    return found


async def test_a_command_whose_event_the_appender_dead_letters_is_told_its_fate(
    stack: EmbeddedStack, unique_name: str
) -> None:
    commands = FleetProcess.for_stack(
        stack, unique_name, roles="commands", EVENTFLEET_DOMAINS="tests.e2e.newer:domains"
    )
    appender = FleetProcess.for_stack(
        stack, unique_name, roles="appender", EVENTFLEET_MAX_EVENT_BYTES=str(LIMIT)
    )
    await start_together(commands, appender)
    run = uuid.uuid4().hex[:6]
    sent, accepted, told_wrong = 0, 0, []

    async def post(order: str, kind: str, data: dict[str, Any], command_id: str) -> tuple[int, Any]:
        nonlocal sent, accepted
        sent += 1
        answer = await commands.post(f"/v1/order/{order}/events",
                                     {"type": kind, "data": data, "command_id": command_id})  # fmt: skip
        accepted += answer[0] == 202
        return answer

    async def outcome(order: str, command_id: str) -> dict[str, Any]:
        _, body = await commands.get(f"/v1/order/{order}/outcome?command_id={command_id}")
        return body  # type: ignore[no-any-return]

    async def settled(order: str, command_id: str) -> bool:
        return (await outcome(order, command_id))["outcome"] in ("stored", "rejected")

    try:
        order, big, garbled, forged = (f"{p}-{run}" for p in ("o", "big", "garbled", "forged"))
        assert (await post(order, "OrderPlaced", {"items": order_items()}, "place"))[0] == 202
        wrapped = await post(order, "OrderGiftWrapped", {}, "wrap")
        assert wrapped[0] == 202, wrapped  # the newer commands process knows the type
        items = [{"sku": f"s{i:060d}", "qty": 1, "price": 1} for i in range(40)]
        assert (await post(big, "OrderPlaced", {"items": items}, "big"))[0] == 202
        # The command id is the test principal's own: its scope names it in the headers.
        scope = command_scope("g1", Actor(TESTER))
        garbled_id = derived_event_id("order", garbled, scope)
        await produce_raw(stack.urls.kafka_url, f"{unique_name}.events", [
            # Bytes no appender can read, with the headers the command path sets: known.
            (f"order:{garbled}".encode(), b'{"id": "' + garbled_id.encode(),
             [("event_id", garbled_id.encode()), ("command_id", b"g1"),
              ("command_scope", scope.encode())]),
            # Headers that contradict each other (the id is another command's): unknown.
            (f"order:{forged}".encode(), b"\xff\xfe",
             [("event_id", garbled_id.encode()), ("command_id", b"f1")]),
            (None, b"not even json", []),  # nothing names it: dead-lettered, told to no one
        ])  # fmt: skip
        for target, command_id in ((order, "wrap"), (big, "big"), (garbled, "g1")):
            await wait_for(lambda t=target, c=command_id: settled(t, c), timeout_s=60,
                           what=f"the fate of {command_id}")  # fmt: skip
        expected = {"wrap": "unknown_event_type", "big": "oversized", "g1": "undecodable"}
        for target, command_id in ((order, "wrap"), (big, "big"), (garbled, "g1")):
            body = await outcome(target, command_id)
            if (body["outcome"], body.get("reason"), body.get("dead_lettered")) != (
                "rejected",
                expected[command_id],
                True,
            ):
                told_wrong.append(body)
        assert (await outcome(forged, "f1"))["outcome"] == "none"

        # A retry with the command id is told the fate, never a 202.
        retry = await post(order, "OrderGiftWrapped", {}, "wrap")
        assert retry[0] == 422 and retry[1]["error"] == "dead_lettered", retry
        assert retry[1]["reason"] == "unknown_event_type"
        assert retry[1]["event_id"] == wrapped[1]["event_id"]
        retry = await post(big, "OrderPlaced", {"items": items}, "big")
        assert (retry[0], retry[1].get("reason")) == (422, "oversized"), retry

        # The mark named the dead event; answered on it, OrderShipped would be a false 202.
        shipped = await post(order, "OrderShipped", {"carrier": "dhl"}, "ship")
        if shipped[0] != 409:
            told_wrong.append(shipped)
        assert shipped[0] == 409 and shipped[1]["current"] == "OrderPlaced", shipped

        # The dead letter parked its order (issue 38): the payment waits behind it, in order,
        # and is stored once an operator skips the head; the rest of the stream kept moving.
        assert (await post(order, "OrderPaid", {"amount": 12.5}, "pay"))[0] == 202
        head, behind = await parked_entries(commands, f"order:{order}", 2)
        assert head.event is not None and head.event.id == wrapped[1]["event_id"]
        assert (head.reason, behind.reason) == ("unknown_event_type", "parked")
        assert (await outcome(order, "pay"))["outcome"] == "accepted"  # waits, not judged
        code, out, err = await eventfleet(
            "dlq", "skip", head.position, "--operator", "ci", env=commands.env
        )
        assert code == 0 and "is released" in out, out + err
        await wait_for(lambda: settled(order, "pay"), timeout_s=60, what="the payment stored")
        assert (await outcome(order, "pay"))["outcome"] == "stored"
        _, events = await commands.get(f"/v1/order/{order}/events")
        assert [e["type"] for e in events["events"]] == ["OrderPlaced", "OrderPaid"]
        stored = 2
        print(f"dead-lettered accepted commands: sent {sent} / accepted {accepted} / stored "
              f"{stored} / dead-lettered and told so 3 / lost 0 / doubled 0 / told wrong "
              f"{len(told_wrong)}")  # fmt: skip
        assert told_wrong == []
    finally:
        await commands.stop()
        await appender.stop()
