"""The suite's own hygiene: what a test writes to the shared Redis under its names goes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from tests.fleet import FleetProcess
from tests.redis_keys import _CLAIMED, claim, unlink_prefixes
from workers.devtools.embedded import EmbeddedStack


@pytest.fixture
def client(stack: EmbeddedStack) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(stack.urls.redis_url) as c:
        yield c


def test_every_key_of_a_claimed_prefix_goes_and_nothing_else(client: redis.Redis) -> None:
    mine, theirs = f"keys_{uuid.uuid4().hex[:8]}.", f"keys_{uuid.uuid4().hex[:8]}."
    # More than one batch of the clean-up, of the kinds a fleet writes (a bitmap, hashes, TTLs).
    with client.pipeline(transaction=False) as p:
        for i in range(2500):
            p.set(f"{mine}abc:cmd:{{order:o-{i}}}", b"x", ex=3600)
        p.setbit(f"{mine}abc:seen", 8 * 1024 * 1024, 1)
        p.hset(f"{mine}abc:mark:{{order:o-1}}", mapping={"type": "OrderPlaced"})
        p.set(f"{theirs}abc:seen", b"kept")
        p.set(mine.rstrip("."), b"kept: the prefix is not this key's")
        p.execute()
    assert unlink_prefixes(client, [mine]) == 2502
    assert list(client.scan_iter(match=f"{mine}*", count=1000)) == []
    assert client.get(f"{theirs}abc:seen") == b"kept"
    assert client.get(mine.rstrip(".")) == b"kept: the prefix is not this key's"
    assert unlink_prefixes(client, [theirs, mine.rstrip(".")]) == 2
    assert unlink_prefixes(client, [mine]) == 0


@pytest.mark.parametrize("prefix", ["", "*", "a?", "x[ab]", "back\\slash"])
def test_a_prefix_that_would_match_more_than_itself_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="plain text"):
        claim(prefix)


def test_fleet_and_test_names_are_claimed(unique_name: str, stack: EmbeddedStack) -> None:
    assert unique_name in _CLAIMED
    process = FleetProcess.for_stack(stack, f"{unique_name}_fleet")  # not started: only its names
    assert process.prefix == f"{unique_name}_fleet."
    assert process.prefix in _CLAIMED
