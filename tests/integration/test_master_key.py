"""A worker refuses to start without a working master key; the same key reopens data keys."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from tests.cli import assert_one_line, eventfleet
from tests.fleet import FleetProcess
from tests.opens import watching
from topics.envelope import utc_now
from topics.errors import ConfigError, StoreError
from workers.adapters.mongo import MongoStores
from workers.devtools.embedded import EmbeddedStack

# A working door that logs nothing, and a Kafka nobody answers: the refusal comes before it.
WORKER = {
    "EVENTFLEET_AUTH": "proxy",
    "EVENTFLEET_AUTH_TRUSTED_PROXIES": "127.0.0.1/32",
    "EVENTFLEET_KAFKA_URL": "kafka://127.0.0.1:1",
}


async def test_a_worker_with_personal_fields_and_no_master_key_refuses_to_start() -> None:
    code, _, err = await eventfleet("worker", "--role", "commands", env=WORKER)
    assert code == 2, err
    assert_one_line(err)
    assert "no master key" in err and "chat_room" in err
    assert "EVENTFLEET_MASTER_KEY_FILE" in err and "EVENTFLEET_MASTER_KEY_ENV" in err


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"EVENTFLEET_MASTER_KEY_ENV": "MK", "MK": "c2hvcnQ="}, "not 32 bytes in base64"),
        ({"EVENTFLEET_MASTER_KEY_ENV": "MK", "MK": "%%%"}, "not 32 bytes in base64"),
        ({"EVENTFLEET_MASTER_KEY_ENV": "MK"}, "not set or empty"),
        ({"EVENTFLEET_MASTER_KEY_FILE": "/nonexistent/key"}, "cannot be read"),
    ],
)
async def test_a_bad_master_key_stops_the_worker_in_one_line(
    extra: dict[str, str], words: str
) -> None:
    code, _, err = await eventfleet("worker", "--role", "commands", env={**WORKER, **extra})
    assert code == 2, err
    assert_one_line(err)
    assert words in err and "EVENTFLEET_MASTER_KEY_" in err
    assert "MK" not in extra or not extra["MK"] or extra["MK"] not in err


async def test_the_same_master_key_reopens_data_keys_and_another_is_refused(
    stack: EmbeddedStack, unique_name: str, tmp_path: Path
) -> None:
    key, other = os.urandom(32), os.urandom(32)
    url = stack.urls.mongo_url

    first = MongoStores(url, unique_name, timeout_ms=5000, master_key=key)
    await first.open()
    made = await first.keys.key_for("ann")
    await first.close()

    restarted = MongoStores(url, unique_name, timeout_ms=5000, master_key=key)
    try:
        assert await restarted.keys.find([made.key_id]) == {made.key_id: made}
        assert await restarted.keys.key_for("ann") == made
    finally:
        await restarted.close()

    wrong = MongoStores(url, unique_name, timeout_ms=5000, master_key=other)
    try:
        with pytest.raises(StoreError, match="does not open with this master key") as refused:
            await wrong.keys.find([made.key_id])
        assert "\n" not in str(refused.value) and base64.b64encode(other).decode() not in str(
            refused.value
        )
    finally:
        await wrong.close()

    keyless = MongoStores(url, unique_name, timeout_ms=5000)
    try:
        with pytest.raises(ConfigError, match="EVENTFLEET_MASTER_KEY_FILE"):
            await keyless.keys.find([made.key_id])
        with pytest.raises(ConfigError, match="no master key"):
            await keyless.keys.key_for("bob")
        erased = await keyless.keys.erase("ann", by="dpo", at=utc_now())
        assert erased is not None and erased.keys_destroyed == 1  # erasing needs no master key
    finally:
        await keyless.close()


async def test_a_worker_reads_each_secret_file_once_from_start_to_ready(
    stack: EmbeddedStack, unique_name: str, tmp_path: Path
) -> None:
    """One reader, at start: the master key (and every other secret) is read and decoded once,
    then handed down; no adapter reads it again."""
    key_file, password_file, hs256_file = (tmp_path / n for n in ("key", "password", "hs256"))
    key_file.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    password_file.write_text("not-used-on-plaintext\n")
    hs256_file.write_bytes(os.urandom(48))
    fleet = FleetProcess.for_stack(
        stack, unique_name, roles="all",
        EVENTFLEET_MASTER_KEY_ENV="", EVENTFLEET_MASTER_KEY_FILE=str(key_file),
        EVENTFLEET_KAFKA_SASL_PASSWORD_FILE=str(password_file),
        EVENTFLEET_AUTH_HS256_SECRET_FILE=str(hs256_file),
    )  # fmt: skip
    with watching(key_file, password_file, hs256_file) as opens:
        await fleet.start()
        try:
            status, _ = await fleet.get("/readyz")
            assert status == 200
            assert opens.count() == {key_file: 1, password_file: 1, hs256_file: 1}
        finally:
            assert await fleet.stop() == 0, fleet.log_tail()
