"""Event ids: derived ones equal the RFC 4122 version 5 UUIDs they always were; fresh ones
are version 7 UUIDs, unique, unguessable and never repeated by a forked child."""

from __future__ import annotations

import os
import time
import uuid

from hypothesis import given
from hypothesis import strategies as st

from topics.envelope import (
    _COMMAND_IDS,
    Actor,
    command_scope,
    decode,
    derived_event_id,
    encode,
    new_event,
    new_event_id,
)

names = st.text(min_size=1, max_size=300)


@given(names, names, names)
def test_a_derived_id_is_the_version_5_uuid_of_its_name(
    kind: str, aggregate: str, command: str
) -> None:
    """Ids stored before the fast path must come out again for every retry of their command."""
    expected = uuid.uuid5(_COMMAND_IDS, f"{kind}\x00{aggregate}\x00{command}")
    assert derived_event_id(kind, aggregate, command) == str(expected)


def test_a_derived_id_still_differs_per_principal() -> None:
    ids = {derived_event_id("order", "o-1", command_scope("c-1", Actor(p))) for p in "abc"}
    assert len(ids) == 3


def test_a_fresh_id_is_a_canonical_version_7_uuid_of_this_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    event_id = new_event_id()
    after = time.time_ns() // 1_000_000
    parsed = uuid.UUID(event_id)
    assert str(parsed) == event_id  # the canonical form the envelope codec keeps
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert before <= parsed.int >> 80 <= after


def test_fresh_ids_never_repeat_across_refills_of_the_random_pool() -> None:
    ids = [new_event_id() for _ in range(5000)]  # ~12 refills of the 4 KiB pool
    assert len(set(ids)) == len(ids)
    random_bits = {uuid.UUID(i).int & ((1 << 62) - 1) for i in ids}
    assert len(random_bits) == len(ids)  # the randomness differs, not only the clock


def test_a_forked_child_does_not_repeat_its_parents_next_ids() -> None:
    new_event_id()  # the pool is filled in the parent
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.close(read)
        os.write(write, ",".join(new_event_id() for _ in range(10)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        child = set(pipe.read().decode().split(","))
    os.waitpid(pid, 0)
    parent = {new_event_id() for _ in range(10)}
    mask = (1 << 62) - 1
    assert len(child) == 10
    assert not {uuid.UUID(i).int & mask for i in child} & {uuid.UUID(i).int & mask for i in parent}


def test_a_new_event_gets_a_fresh_id_that_round_trips() -> None:
    event = new_event("order", "o-1", "OrderPlaced", {})
    assert uuid.UUID(event.id).version == 7
    assert decode(encode(event)).id == event.id
