"""The store's connection: its timeout means what it says; a bad URL never shows its password."""

from __future__ import annotations

import time

import pymongo
import pytest

from topics.envelope import new_event
from topics.errors import ConfigError, StoreUnavailable
from workers.adapters.mongo import MongoEventStore, connect, database
from workers.devtools.embedded import EmbeddedStack, free_port


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
    assert time.monotonic() - started < 5  # bounded, never hung (generous: a loaded machine)
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


async def test_the_last_version_of_every_aggregate_is_read_past_a_requests_bound(
    stack: EmbeddedStack, unique_name: str
) -> None:
    """``versions`` reads every event of its types in one command (a new-aggregate filter's
    rebuild, the console's list): it has a bound of its own, not a request's. With the
    request's bound it failed on a large store at every try (the bench's live part, its
    store saturated by the tries it had abandoned)."""
    events = [
        new_event("order", f"o{a:04}", kind, {}, version=v)
        for a in range(2000)
        for v, kind in enumerate(("OrderPlaced", "OrderPaid", "OrderShipped"), start=1)
    ]
    setup = connect(stack.urls.mongo_url, timeout_ms=60_000)
    short = connect(stack.urls.mongo_url, timeout_ms=50)  # far below a read of 6,000 events
    try:
        await MongoEventStore(database(setup, unique_name)).append(events)
        with pymongo.timeout(30):  # connected first: what fails below is the read, not reaching
            await database(short, unique_name).command("ping")  # the store on a loaded machine
        store = MongoEventStore(database(short, unique_name))
        with pytest.raises(StoreUnavailable):  # a whole read within a request's bound: no
            await store.count(["order"])
        versions = await store.versions(["order"])
    finally:
        await setup.close()
        await short.close()
    assert len(versions) == 2000 and set(versions.values()) == {3}
