"""``eventfleet dev`` as a newcomer uses it: the banner, the export block, and nothing left behind."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis

from tests.cli import assert_one_line, eventfleet
from tests.e2e.dev_runs import PREFIX, Dev, call, leftovers, post, start_dev
from tests.waiting import wait_for
from workers.devtools.embedded import EmbeddedStack


async def keys(url: str, pattern: str) -> list[bytes]:
    client = aioredis.Redis.from_url(url)
    try:
        return [key async for key in client.scan_iter(match=pattern, count=1000)]
    finally:
        await client.aclose()


@pytest.fixture(scope="module")
async def dev(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Dev]:
    """One dev per module, default domains, every service its own."""
    running = await start_dev(
        tmp_path_factory.mktemp("dev") / "tmp", env={"EVENTFLEET_TOPIC_PREFIX": PREFIX}
    )
    yield running
    assert await running.stop() == 130  # Ctrl-C: drained, cleaned, and said so by the code
    assert leftovers(running.workdir) == []


async def test_the_banner_names_the_default_domains_and_their_curl_lines(dev: Dev) -> None:
    assert "domains   account, chat_room, order" in dev.banner
    assert "-XPOST" in dev.banner and "/v1/order/o-1/events" in dev.banner
    assert f"{PREFIX}orders" in dev.banner
    assert ":0/" not in dev.api and dev.api.rsplit(":", 1)[1] != "0"  # the real port


async def test_dev_shuts_its_door_and_prints_a_token_that_opens_it(dev: Dev) -> None:
    placed = {"type": "OrderPlaced", "data": {"items": [{"sku": "a", "qty": 1, "price": 1}]}}
    assert await post(dev, "/v1/order/door-1/events", placed, token=False) == 401
    assert await post(dev, "/v1/order/door-1/events", placed) == 202
    assert (
        "curl -s -H \"Authorization: Bearer $EVENTFLEET_TOKEN\" -w ' %{http_code}\\n' -XPOST"
        in dev.banner
    )
    exports = dev.exports
    assert exports["EVENTFLEET_AUTH"] == "jwt" and exports["EVENTFLEET_AUTH_JWKS"].endswith(".json")


async def test_dev_prints_alice_bob_and_ops_and_the_rules_tell_them_apart(dev: Dev) -> None:
    """Each token names its user and roles (as stored in the events' actor); alice may change
    her chat message and bob may not, ops (moderator) may; alice reads the console, bob not."""
    assert {"EVENTFLEET_TOKEN_ALICE", "EVENTFLEET_TOKEN_BOB", "EVENTFLEET_TOKEN_OPS"} <= set(
        dev.exports
    )
    assert dev.exports["EVENTFLEET_TOKEN"] == dev.exports["EVENTFLEET_TOKEN_OPS"]
    for user in ("alice", "bob", "ops"):
        assert f" {user} " in dev.banner and f"$EVENTFLEET_TOKEN_{user.upper()}" in dev.banner
    room = f"users-{uuid.uuid4().hex[:6]}"
    events = f"/v1/chat_room/{room}/events"
    sent = {"type": "MessageSent", "data": {"message_id": "m1", "content": "hello"}}
    assert (await call(dev, "POST", events, sent, as_user="alice"))[0] == 202
    status, _ = await call(dev, "GET", f"/v1/chat_room/{room}/state?min_version=1&wait_ms=5000")
    assert status == 200
    edit = {"type": "MessageEdited", "data": {"message_id": "m1", "content": "bob was here"}}
    status, refused = await call(dev, "POST", events, edit, as_user="bob")
    assert (status, refused["error"], refused["reason"]) == (403, "forbidden", "not_your_message")
    assert "alice" in refused["message"]
    own = {"type": "MessageEdited", "data": {"message_id": "m1", "content": "hello again"}}
    assert (await call(dev, "POST", events, own, as_user="alice"))[0] == 202
    removed = {"type": "MessageDeleted", "data": {"message_id": "m1"}}
    assert (await call(dev, "POST", events, removed, as_user="ops"))[0] == 202
    status, page = await call(dev, "GET", f"{events}?min_version=3&wait_ms=5000")
    assert status == 200, page
    actors = [(e["type"], e["metadata"]["actor"]) for e in page["events"]]
    viewer, operator = "eventfleet-viewer", "eventfleet-operator"
    assert actors == [
        ("MessageSent", {"principal": "alice", "roles": [viewer]}),
        ("MessageEdited", {"principal": "alice", "roles": [viewer]}),
        ("MessageDeleted", {"principal": "ops", "roles": [operator, viewer, "moderator"]}),
    ]
    assert (await call(dev, "GET", "/console", as_user="alice"))[0] == 200
    assert (await call(dev, "GET", "/console", as_user="bob"))[0] == 403


async def test_the_export_block_points_replay_and_topics_check_at_dev(dev: Dev) -> None:
    exports = dev.exports
    assert exports["EVENTFLEET_KAFKA_IDEMPOTENCE"] == "false"
    assert exports["EVENTFLEET_PARTITIONS"] == "4"
    assert {"EVENTFLEET_KAFKA_URL", "EVENTFLEET_MONGO_URL", "EVENTFLEET_REDIS_URL"} <= set(exports)
    placed = {"type": "OrderPlaced", "data": {"items": [{"sku": "tea", "qty": 2, "price": 3.5}]}}
    assert await post(dev, "/v1/order/export-1/events", placed) == 202

    async def replayed() -> bool:
        code, out, _ = await eventfleet("replay", "order", "export-1", "--json", env=exports)
        return code == 0 and orjson.loads(out)["state"]["status"] == "placed"

    await wait_for(replayed, timeout_s=30, what="replay to show the stored order")
    code, out, err = await eventfleet("topics", "check", env=exports)
    assert code == 0, out + err
    assert f"{PREFIX}orders" in out and "mismatch" not in out and "missing" not in out


async def test_replay_starts_no_producer(dev: Dev) -> None:
    # With Kafka unreachable, anything that started a producer (or any Kafka client) would fail.
    placed = {"type": "OrderPlaced", "data": {"items": [{"sku": "cup", "qty": 1, "price": 9.0}]}}
    assert await post(dev, "/v1/order/nokafka-1/events", placed) == 202
    env = {**dev.exports, "EVENTFLEET_KAFKA_URL": "kafka://127.0.0.1:1"}

    async def replayed() -> bool:
        code, _, err = await eventfleet("replay", "order", "nokafka-1", env=env)
        assert "Traceback" not in err and "Kafka" not in err, err
        return code == 0

    await wait_for(replayed, timeout_s=30, what="replay without Kafka")


async def test_dev_keeps_its_keys_in_its_own_redis_not_the_users(
    dev: Dev, stack: EmbeddedStack
) -> None:
    ours = dev.exports["EVENTFLEET_REDIS_URL"]
    assert ours != stack.urls.redis_url
    placed = {"type": "OrderPlaced", "data": {"items": [{"sku": "tea", "qty": 1, "price": 3.5}]}}
    assert await post(dev, "/v1/order/own-1/events", placed) == 202
    await wait_for(
        lambda: keys(ours, f"{PREFIX}*mark:*"), timeout_s=10, what="the mark in dev's Redis"
    )
    assert await keys(stack.urls.redis_url, f"{PREFIX}*") == []


async def test_a_lent_redis_and_a_custom_domain_set_leave_nothing_behind(
    stack: EmbeddedStack, tmp_path: Path, unique_name: str
) -> None:
    prefix = f"{unique_name}."
    lent = await start_dev(
        tmp_path / "tmp",
        "--redis", stack.urls.redis_url,
        env={"EVENTFLEET_DOMAINS": "tests.e2e.counting:domains", "EVENTFLEET_TOPIC_PREFIX": prefix},
    )  # fmt: skip
    try:
        assert "domains   tally" in lent.banner
        assert "/v1/order" not in lent.banner and "account" not in lent.banner
        line = '/v1/tally/tally-1/events -H \'Content-Type: application/json\' -d \'{"type":"Counted","data":{}}\''
        assert line in lent.banner
        assert lent.exports["EVENTFLEET_REDIS_URL"] == stack.urls.redis_url
        assert await post(lent, "/v1/tally/t-1/events", {"type": "Counted", "data": {}}) == 202
        await wait_for(
            lambda: keys(stack.urls.redis_url, f"{prefix}*mark:*"),
            timeout_s=10,
            what="the mark in the lent Redis",
        )
    finally:
        code = await lent.stop()
    assert code == 130
    assert await keys(stack.urls.redis_url, f"{prefix}*") == []
    assert leftovers(lent.workdir) == []
    # The shell still holds the ended run's export block: told the stack is not running.
    code, _, err = await eventfleet("replay", "tally", "t-1", env=lent.exports)
    assert code == 1
    assert_one_line(err)
    assert "the dev stack is not running" in err and "Start `eventfleet dev` again" in err


async def test_dev_with_an_unreachable_lent_redis_is_one_line(tmp_path: Path) -> None:
    code, _, err = await eventfleet(
        "dev", "--port", "0", "--redis", "redis://127.0.0.1:1/0",
        env={"TMPDIR": str(tmp_path), "EVENTFLEET_REDIS_TIMEOUT_MS": "300"},
    )  # fmt: skip
    assert code == 1
    assert_one_line(err)
    assert "redis://127.0.0.1:1/0" in err and "did not answer" in err
    assert leftovers(tmp_path) == []


async def test_dev_seals_with_its_own_master_key_and_the_export_block_opens_it(dev: Dev) -> None:
    exports = dev.exports
    key_file = Path(exports["EVENTFLEET_MASTER_KEY_FILE"])
    assert key_file.is_relative_to(dev.workdir) and len(base64.b64decode(text(key_file))) == 32
    opened = {"type": "AccountOpened", "data": {"owner": "Ann Devkey"}}
    assert await post(dev, "/v1/account/devkey-1/events", opened) == 201  # a sync domain

    async def replayed() -> bool:  # another process, the exported key: the holder reads back
        code, out, _ = await eventfleet("replay", "account", "devkey-1", "--json", env=exports)
        return code == 0 and orjson.loads(out)["state"]["owner"] == "Ann Devkey"

    await wait_for(replayed, timeout_s=30, what="replay to open the sealed holder")
    log = text(dev.workdir.parent / f"{dev.workdir.name}.log")
    assert "master key" not in log  # a healthy dev says nothing about keys


def text(path: Path) -> str:
    return path.read_text(errors="replace")
