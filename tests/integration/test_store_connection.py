"""The store's connection: its timeout means what it says; a bad URL never shows its password."""

from __future__ import annotations

import time

import pytest

from topics.errors import ConfigError, StoreUnavailable
from workers.adapters.mongo import MongoEventStore, connect, database
from workers.devtools.embedded import free_port


async def test_the_timeout_bounds_a_whole_call_not_twice_it() -> None:
    client = connect("mongodb://127.0.0.1:1/?directConnection=true", timeout_ms=5000)
    try:
        assert client.options.timeout == 5.0  # timeoutMS: selection + connection + operation
        assert client.options.server_selection_timeout == 5.0
    finally:
        await client.close()


async def test_a_store_that_does_not_answer_fails_within_its_timeout_with_a_sentence() -> None:
    client = connect(f"mongodb://127.0.0.1:{free_port()}/?directConnection=true", timeout_ms=300)
    store = MongoEventStore(database(client, "nowhere"))
    started = time.monotonic()
    try:
        with pytest.raises(StoreUnavailable) as caught:
            await store.select(("order", "o1"))
    finally:
        await client.close()
    assert time.monotonic() - started < 5  # a generous bound: 300 ms, not 600 or more
    # The message (what a 503 body carries) is a sentence, not PyMongo's topology description.
    assert str(caught.value) == "MongoDB did not answer while reading order o1."


@pytest.mark.parametrize(
    "url",
    [
        "mongodb://admin:hunter2@db:notaport/",
        "mongodb://admin:hunter2@/?replicaSet=rs0",
        "mongodb+srv://admin:hunter2@db:27017/",
    ],
)
async def test_an_unusable_url_is_refused_with_its_password_masked(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        connect(url, timeout_ms=1000)
    assert "hunter2" not in str(caught.value)
    assert "EVENTFLEET_MONGO_URL='mongodb" in str(caught.value)
