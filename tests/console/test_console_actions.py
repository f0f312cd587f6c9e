"""The console's operator actions over HTTP, on the package's fleet (auth jwt, actions on):
posting an event from the schema's form, producing a raw record, resetting a group's offsets.

Each is reviewed before it acts, acts only on confirm, is audited; every refusal (no CSRF
token, a viewer, actions off, a fleet topic without the admin role, an active group, bad
offsets or time, an unknown type or event type, invalid data) is shown to change nothing.
"""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.console.conftest import stored
from tests.console.http_calls import as_, call
from tests.console.kafka_state import commit, committed, create, filled, kafka_url, records_of
from tests.fleet import FleetProcess
from tests.tokens import OPERATOR, VIEWER
from tests.waiting import wait_for

ADMIN = "eventfleet-admin"
CSRF = {"Cookie": "eventfleet_csrf=c"}


async def act(
    fleet: FleetProcess, path: str, form: dict[str, str], *roles: str, csrf: bool = True
) -> tuple[int, str]:
    """A console form posted as ``olga`` with ``roles`` (the operator's unless told)."""
    headers = {**as_(fleet, *(roles or (OPERATOR,)), sub="olga"), **(CSRF if csrf else {})}
    status, body, _ = await call(fleet, "POST", path, headers=headers,
                                 form={**form, **({"csrf": "c"} if csrf else {})})  # fmt: skip
    return status, body


def carried(page: str) -> dict[str, str]:
    """The hidden fields of a review page's confirm form (what its confirm sends)."""
    form = page[page.index('id="confirm-form"') :]
    found = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form)
    return {name: html.unescape(value) for name, value in found if name != "csrf"}


async def audited(fleet: FleetProcess, action: str, target: str) -> bool:
    status, page = await fleet.get("/console/audit")
    return status == 200 and any(
        action in row and html.escape(target) in row for row in page.split("<tr>")
    )


# --- posting an event -----------------------------------------------------------------------


async def test_an_event_is_posted_from_the_schema_form_after_review_and_audited(
    console_fleet: FleetProcess,
) -> None:
    fleet, order = console_fleet, f"post-{uuid.uuid4().hex[:8]}"
    status, page = await fleet.get(f"/console/post?event=order:OrderPlaced&aggregate_id={order}")
    assert status == 200 and 'name="data.items"' in page and "JSON list of 1 to" in page, page
    items = [{"sku": "a", "qty": 2, "price": 2.5}]
    form = {"event": "order:OrderPlaced", "aggregate_id": order,
            "data.items": orjson.dumps(items).decode()}  # fmt: skip
    status, review = await act(fleet, "/console/post/review", form)
    assert status == 200 and f"POST /v1/order/{order}/events" in review, review
    sent = orjson.loads(carried(review)["request"])
    assert sent["type"] == "OrderPlaced" and sent["data"] == {"items": items}
    assert sent["command_id"].startswith("console:")
    assert await stored(fleet, "order", order) == []  # nothing before the confirm
    status, answer = await act(fleet, "/console/post/send", carried(review) | {})
    assert status == 200 and "status 202" in answer, answer
    assert "event_id" in answer
    events: list[dict[str, Any]] = []

    async def arrived() -> bool:
        events[:] = await stored(fleet, "order", order)
        return bool(events)

    await wait_for(arrived, timeout_s=60, what="the posted event stored")
    assert [e["type"] for e in events] == ["OrderPlaced"]
    assert events[0]["data"] == {"items": items}
    assert events[0]["metadata"]["actor"]["principal"] == "olga"
    # Confirming the same review again is the same command: stored once.
    status, again = await act(fleet, "/console/post/send", carried(review))
    assert status == 200 and "duplicate" in again, again
    assert await audited(fleet, "post_event", f"order/{order}")
    # A field typed as a number on the form is a number in the event.
    paid = {"event": "order:OrderPaid", "aggregate_id": order, "data.amount": "5"}
    status, review = await act(fleet, "/console/post/review", paid)
    assert status == 200 and orjson.loads(carried(review)["request"])["data"] == {"amount": 5}


@pytest.mark.parametrize(
    ("form", "status", "says"),
    [
        ({"event": "spaceship:Launched"}, 404, "no domain is declared for aggregate type"),
        ({"event": "order:OrderTeleported"}, 422, "order has no event type 'OrderTeleported'"),
        ({"data.items": "[]"}, 422, "items"),
        ({"data.items": "[{"}, 400, "is no JSON"),
        ({"data.items": '[{"sku": "a", "qty": "two", "price": 1}]'}, 422, "qty"),
        ({"aggregate_id": "no spaces allowed"}, 400, "aggregate"),
        ({"expected_version": "seven"}, 400, "expected_version"),
        ({"data.colour": "red"}, 400, "no field 'colour'"),
    ],
)
async def test_a_bad_event_form_comes_back_with_its_error_and_nothing_is_sent(
    console_fleet: FleetProcess, form: dict[str, str], status: int, says: str
) -> None:
    order = f"bad-{uuid.uuid4().hex[:8]}"
    sent = {"event": "order:OrderPlaced", "aggregate_id": order,
            "data.items": '[{"sku": "a", "qty": 1, "price": 1}]', **form}  # fmt: skip
    got, page = await act(console_fleet, "/console/post/review", sent)
    assert got == status and 'id="error"' in page and says in html.unescape(page), page
    assert 'id="choose"' in page  # the form again
    assert 'id="confirm"' not in page
    assert await stored(console_fleet, "order", order) == []


async def test_posting_is_refused_without_csrf_to_a_viewer_unconfirmed_and_when_forged(
    console_fleet: FleetProcess,
) -> None:
    fleet, order = console_fleet, f"ref-{uuid.uuid4().hex[:8]}"
    form = {"event": "order:OrderPlaced", "aggregate_id": order,
            "data.items": '[{"sku": "a", "qty": 1, "price": 1}]'}  # fmt: skip
    status, review = await act(fleet, "/console/post/review", form)
    assert status == 200
    confirm = carried(review)
    status, body = await act(fleet, "/console/post/send", confirm, csrf=False)
    assert status == 403 and '"reason":"csrf_token"' in body
    status, body = await act(fleet, "/console/post/send", confirm, VIEWER)
    assert status == 403 and '"reason":"role_required"' in body
    status, body = await act(fleet, "/console/post/send", {**confirm, "confirm": "no"})
    assert status == 400 and "review it first" in body
    forged = orjson.loads(confirm["request"]) | {"command_id": "mine"}
    status, body = await act(fleet, "/console/post/send",
                             {**confirm, "request": orjson.dumps(forged).decode()})  # fmt: skip
    assert status == 400 and "command id" in body
    bad = orjson.loads(confirm["request"]) | {"data": {"items": []}}
    status, body = await act(fleet, "/console/post/send",
                             {**confirm, "request": orjson.dumps(bad).decode()})  # fmt: skip
    assert status == 422 and "items" in body
    assert await stored(fleet, "order", order) == []
    assert not await audited(fleet, "post_event", f"order/{order}")


async def test_every_action_is_refused_on_a_read_only_console(fleet: FleetProcess) -> None:
    for path in ("/console/post/review", "/console/post/send", "/console/produce/review",
                 "/console/produce/send", "/console/groups/g/reset/review",
                 "/console/groups/g/reset/apply"):  # fmt: skip
        status, body = await act(fleet, path, {"confirm": "yes"})
        assert status == 403 and '"error":"console_read_only"' in body, (path, body)
    # The pages say why instead of offering a form that would be refused.
    status, page = await fleet.get("/console/post?event=order:OrderPlaced&aggregate_id=x")
    assert status == 200 and 'id="read-only"' in page and 'id="post-event"' not in page
    status, page = await fleet.get("/console/produce")
    assert status == 200 and 'id="read-only"' in page and 'id="produce"' not in page
    status, page = await fleet.get("/console/groups/g/reset")
    assert status == 200 and 'id="read-only"' in page and 'id="reset"' not in page


# --- producing a record -----------------------------------------------------------------------


@pytest.fixture
async def topic(console_fleet: FleetProcess, unique_name: str) -> AsyncIterator[str]:
    """A topic of two partitions the fleet does not own."""
    yield await create(console_fleet, f"ext-{unique_name}", 2)


async def test_a_record_is_produced_after_review_with_its_key_and_headers(
    console_fleet: FleetProcess, topic: str
) -> None:
    fleet = console_fleet
    status, page = await fleet.get(f"/console/produce?topic={topic}")
    assert status == 200 and f'value="{topic}"' in page
    form = {"topic": topic, "partition": "1", "key": "k-1", "headers": "trace: abc\nsource: ops",
            "value": '{"hello": "world"}'}  # fmt: skip
    status, review = await act(fleet, "/console/produce/review", form)
    assert status == 200 and 'id="record"' in review and "k-1" in review, review
    assert await records_of(fleet, topic) == []  # nothing before the confirm
    status, answer = await act(fleet, "/console/produce/send", carried(review))
    assert status == 200 and "status 200" in answer, answer
    result = orjson.loads(html.unescape(re.findall(r"<pre>(.*?)</pre>", answer, re.S)[-1]))
    assert (result["topic"], result["partition"], result["offset"]) == (topic, 1, 0)
    [record] = await records_of(fleet, topic)
    assert (record.partition, record.key, record.value) == (1, b"k-1", b'{"hello": "world"}')
    assert list(record.headers) == [("trace", b"abc"), ("source", b"ops")]
    assert await audited(fleet, "produce_record", f"{topic}/1/0")


async def test_the_fleets_own_topics_need_the_admin_role(
    console_fleet: FleetProcess, unique_name: str
) -> None:
    fleet = console_fleet
    commands = f"{fleet.prefix}commands"
    before = len(await records_of(fleet, commands))
    form = {"topic": commands, "value": "{}"}
    status, body = await act(fleet, "/console/produce/review", form)
    assert status == 403 and "admin_role_required" in body and ADMIN in body, body
    forged = {"record": orjson.dumps({"topic": commands, "partition": None, "key": None,
                                      "headers": [], "value": "{}"}).decode(), "confirm": "yes"}  # fmt: skip
    status, body = await act(fleet, "/console/produce/send", forged)
    assert status == 403 and "admin_role_required" in body
    assert len(await records_of(fleet, commands)) == before  # nothing produced
    # Under the fleet's prefix is the fleet's too; with the admin role it takes the record.
    scratch = await create(fleet, f"{fleet.prefix}scratch-{unique_name}", 1)
    status, body = await act(fleet, "/console/produce/review", {"topic": scratch, "value": "x"})
    assert status == 403 and "admin_role_required" in body
    status, review = await act(fleet, "/console/produce/review", {"topic": scratch, "value": "x"},
                               OPERATOR, ADMIN)  # fmt: skip
    assert status == 200, review
    status, answer = await act(fleet, "/console/produce/send", carried(review), OPERATOR, ADMIN)
    assert status == 200 and "status 200" in answer, answer
    assert [r.value for r in await records_of(fleet, scratch)] == [b"x"]


@pytest.mark.parametrize(
    ("form", "status", "says"),
    [
        ({"topic": "no-such-topic-anywhere"}, 404, "have no topic"),
        ({"topic": "bad topic!"}, 400, "is no topic name"),
        ({"partition": "7"}, 400, "is not one of"),
        ({"partition": "-1"}, 400, "is not one of"),
        ({"partition": "²"}, 400, "is not one of"),  # a digit to isdigit(), no number to int()
        ({"partition": "\u0661"}, 400, "is not one of"),  # int() reads it as 1: still refused
        ({"headers": "no colon here"}, 400, "is not `name: value`"),
    ],
)
async def test_a_bad_record_form_comes_back_with_its_error_and_nothing_is_produced(
    console_fleet: FleetProcess, topic: str, form: dict[str, str], status: int, says: str
) -> None:
    got, page = await act(console_fleet, "/console/produce/review",
                          {"topic": topic, "value": "v", **form})  # fmt: skip
    assert got == status and says in html.unescape(page) and 'id="produce"' in page, page
    assert await records_of(console_fleet, topic) == []


async def test_producing_is_refused_without_csrf_to_a_viewer_and_unconfirmed(
    console_fleet: FleetProcess, topic: str
) -> None:
    fleet = console_fleet
    status, review = await act(fleet, "/console/produce/review", {"topic": topic, "value": "v"})
    assert status == 200
    confirm = carried(review)
    status, body = await act(fleet, "/console/produce/send", confirm, csrf=False)
    assert status == 403 and '"reason":"csrf_token"' in body
    status, body = await act(fleet, "/console/produce/send", confirm, VIEWER)
    assert status == 403 and '"reason":"role_required"' in body
    status, body = await act(fleet, "/console/produce/send", {**confirm, "confirm": ""})
    assert status == 400 and "review it first" in body
    assert await records_of(fleet, topic) == []


# --- resetting a group's offsets -----------------------------------------------------------------


@pytest.fixture
async def idle_group(console_fleet: FleetProcess, topic: str) -> str:
    """A group without members that committed 5 and 5 on ``topic`` (5 records a partition)."""
    group = f"idle-{uuid.uuid4().hex[:8]}"
    await filled(console_fleet, topic, 5)
    await commit(console_fleet, group, {TopicPartition(topic, p): 5 for p in (0, 1)})
    return group


async def test_an_idle_groups_offsets_are_reset_after_a_dry_run_and_audited(
    console_fleet: FleetProcess, topic: str, idle_group: str
) -> None:
    fleet, group = console_fleet, idle_group
    status, page = await fleet.get(f"/console/groups/{group}/reset?topic={topic}")
    assert status == 200 and "no members" in page and 'id="committed"' in page, page
    # A time between two records of partition 0: the first offset at or after it, per partition.
    written = [(r.partition, r.offset, r.timestamp_ms or 0) for r in await records_of(fleet, topic)]
    later = max(stamp for p, offset, stamp in written if (p, offset) == (0, 3))
    first = {p: min([o for q, o, stamp in written if q == p and stamp >= later] or [5])
             for p in (0, 1)}  # fmt: skip
    moment = datetime.fromtimestamp(later / 1000, UTC).isoformat(timespec="milliseconds")
    for to, extra, expected in (
        ("time", {"time": moment}, first),
        ("earliest", {}, {0: 0, 1: 0}),
        ("offsets", {"offsets": "0=2, 1:3"}, {0: 2, 1: 3}),
        ("time", {"time": "2000-01-01T00:00:00Z"}, {0: 0, 1: 0}),
        ("latest", {}, {0: 5, 1: 5}),
        ("offsets", {"offsets": "1=4"}, {0: 5, 1: 4}),
        ("time", {"time": "2999-01-01T00:00:00Z"}, {0: 5, 1: 5}),
    ):
        before = await committed(fleet, group, topic)
        form = {"topic": topic, "to": to, **extra}
        status, dry = await act(fleet, f"/console/groups/{group}/reset/review", form)
        assert status == 200 and 'id="plan"' in dry, dry
        plan = orjson.loads(carried(dry)["plan"])
        shown = {int(p): row["new"] for p, row in plan["partitions"].items()}
        assert {**before, **shown} == expected, (to, plan)
        assert all(row["lag_after"] == 5 - row["new"] for row in plan["partitions"].values())
        assert await committed(fleet, group, topic) == before  # a dry run changes nothing
        status, done = await act(fleet, f"/console/groups/{group}/reset/apply", carried(dry))
        assert status == 200 and "status 200" in done, done
        assert await committed(fleet, group, topic) == expected, to
    assert await audited(fleet, "group_reset", f"{group} on {topic}")


@pytest.mark.parametrize(
    ("form", "status", "says"),
    [
        ({"to": "offsets", "offsets": "0=99"}, 400, "offset 99 of partition 0 is not held"),
        ({"to": "offsets", "offsets": "7=1"}, 400, "no partition 7"),
        ({"to": "offsets", "offsets": "zero"}, 400, "is not partition=offset"),
        ({"to": "offsets", "offsets": ""}, 400, "at least one"),
        ({"to": "time", "time": "yesterday"}, 400, "2026-01-01T00:00:00Z"),
        ({"to": "time", "time": ""}, 400, "give the time"),
        ({"to": "tomorrow"}, 400, "choose one of"),
        ({"topic": "no-such-topic-anywhere"}, 404, "have no topic"),
    ],
)
async def test_bad_offsets_times_and_topics_come_back_with_their_error_and_change_nothing(
    console_fleet: FleetProcess, topic: str, idle_group: str, form: dict[str, str], status: int,
    says: str,
) -> None:  # fmt: skip
    path = f"/console/groups/{idle_group}/reset/review"
    got, page = await act(console_fleet, path, {"topic": topic, **form})
    assert got == status and says in html.unescape(page) and 'id="reset"' in page, page
    assert await committed(console_fleet, idle_group, topic) == {0: 5, 1: 5}


async def test_an_active_group_is_refused_naming_its_members_and_nothing_moves(
    console_fleet: FleetProcess, topic: str, idle_group: str
) -> None:
    fleet = console_fleet
    status, dry = await act(fleet, f"/console/groups/{idle_group}/reset/review",
                            {"topic": topic, "to": "earliest"})  # fmt: skip
    assert status == 200
    member = AIOKafkaConsumer(topic, bootstrap_servers=kafka_url(fleet), group_id=idle_group,
                              client_id="still-here", enable_auto_commit=False)  # fmt: skip
    await member.start()
    try:

        async def joined() -> bool:
            await member.getmany(timeout_ms=100)
            return bool(member.assignment())

        await wait_for(joined, timeout_s=60, what="the member to join its group")
        for path, form in ((f"/console/groups/{idle_group}/reset/review",
                            {"topic": topic, "to": "earliest"}),
                           (f"/console/groups/{idle_group}/reset/apply", carried(dry))):  # fmt: skip
            status, page = await act(fleet, path, form)
            assert status == 409 and "consumer_group_active" in page, page
            assert "still-here" in page and "Nothing was changed" in page
        assert await committed(fleet, idle_group, topic) == {0: 5, 1: 5}
    finally:
        await member.stop()


async def test_resetting_is_refused_without_csrf_to_a_viewer_and_unconfirmed(
    console_fleet: FleetProcess, topic: str, idle_group: str
) -> None:
    fleet, path = console_fleet, f"/console/groups/{idle_group}/reset"
    status, dry = await act(fleet, f"{path}/review", {"topic": topic, "to": "earliest"})
    assert status == 200
    confirm = carried(dry)
    status, body = await act(fleet, f"{path}/apply", confirm, csrf=False)
    assert status == 403 and '"reason":"csrf_token"' in body
    status, body = await act(fleet, f"{path}/review", {"topic": topic, "to": "earliest"}, VIEWER)
    assert status == 403 and '"reason":"role_required"' in body
    status, body = await act(fleet, f"{path}/apply", {**confirm, "confirm": "maybe"})
    assert status == 400 and "review it first" in body
    assert await committed(fleet, idle_group, topic) == {0: 5, 1: 5}
