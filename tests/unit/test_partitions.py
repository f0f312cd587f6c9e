"""Our key partitioning is the Kafka clients' own: the same partition for every key."""

from __future__ import annotations

import os
import random

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from workers.adapters.partitions import CachedPartitioner, murmur2, partition_for

# From the Java client's UtilsTest.testMurmur2 (signed 32-bit values there).
JAVA = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize(("key", "signed"), JAVA.items())
def test_murmur2_is_the_java_clients(key: bytes, signed: int) -> None:
    assert murmur2(key) == signed & 0xFFFFFFFF


def test_murmur2_is_aiokafkas_for_every_length_and_byte() -> None:
    rng = random.Random(7)
    keys = [b"", b"\x00", b"\xff" * 7, *(os.urandom(n) for n in range(80))]
    keys += [bytes(rng.randrange(256) for _ in range(rng.randrange(200))) for _ in range(500)]
    for key in keys:
        assert murmur2(key) == aiokafka_murmur2(key), key


def test_the_cached_partitioner_picks_what_aiokafka_picks() -> None:
    ours, theirs = CachedPartitioner(size=64), DefaultPartitioner()
    for count in (1, 3, 8, 12):
        every = list(range(count))
        for i in range(300):  # past the memory's size: it is cleared and keeps answering right
            key = f"Order:{i % 150}-{count}".encode()
            expected = theirs(key, every, every)
            assert ours(key, every, every) == expected == partition_for(key, count)
    assert len(ours._hashes) <= 64


def test_a_record_without_a_key_goes_to_a_partition_with_a_leader() -> None:
    ours = CachedPartitioner()
    assert {ours(None, [0, 1, 2, 3], [2]) for _ in range(20)} == {2}
    assert {ours(None, [0, 1], []) for _ in range(50)} <= {0, 1}


def test_a_key_that_is_not_bytes_is_refused() -> None:
    with pytest.raises(TypeError):
        murmur2("Order:1")  # type: ignore[arg-type]
