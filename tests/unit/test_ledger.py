"""The offset ledger: random interleavings of records taken, decided, released and revoked."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from workers.runtime.offsets import OffsetLedger


def test_nothing_is_released_past_a_record_still_undecided() -> None:
    ledger: OffsetLedger[str] = OffsetLedger()
    for offset in range(5):
        assert ledger.take(0, offset, f"r{offset}")
    for offset in (1, 2, 4):
        ledger.decide(0, offset)
    assert ledger.release() == []  # offset 0 is still undecided
    assert ledger.committable() == {0: 0}
    ledger.decide(0, 0)
    assert ledger.release() == ["r0", "r1", "r2"]
    assert ledger.committable() == {0: 3}
    ledger.decide(0, 3)
    assert ledger.release() == ["r3", "r4"] and ledger.committable() == {}


def test_a_record_taken_twice_is_held_once() -> None:
    ledger: OffsetLedger[str] = OffsetLedger()
    assert ledger.take(1, 7, "first") and not ledger.take(1, 7, "again")
    ledger.decide(1, 7)
    assert ledger.release() == ["first"] and ledger.release() == []


def test_revoked_partitions_are_forgotten_and_late_decisions_ignored() -> None:
    ledger: OffsetLedger[str] = OffsetLedger()
    ledger.take(0, 0, "a")
    ledger.take(1, 0, "b")
    ledger.revoke([0])
    ledger.decide(0, 0)  # the batch that held it finished after the rebalance
    ledger.decide(1, 0)
    assert ledger.release() == ["b"] and ledger.undecided() == 0


def test_a_seek_back_keeps_offsets_in_order() -> None:
    ledger: OffsetLedger[int] = OffsetLedger()
    for offset in (10, 11, 5):
        ledger.take(0, offset, offset)
    for offset in (10, 11):
        ledger.decide(0, offset)
    assert ledger.release() == [] and ledger.committable() == {0: 5}
    ledger.decide(0, 5)
    assert ledger.release() == [5, 10, 11]


@dataclass
class Model:
    """What a consumer would see: per partition, the next offset, and what it decided."""

    next_offset: dict[int, int] = field(default_factory=dict)
    taken: dict[int, list[int]] = field(default_factory=dict)  # since the last revoke
    decided: set[tuple[int, int]] = field(default_factory=set)
    released: list[tuple[int, int]] = field(default_factory=list)
    released_since_revoke: dict[int, list[int]] = field(default_factory=dict)


steps = st.lists(
    st.one_of(
        st.tuples(st.just("take"), st.integers(0, 2), st.integers(1, 4)),
        st.tuples(st.just("decide"), st.integers(0, 2), st.integers(0, 30)),
        st.tuples(st.just("release"), st.just(0), st.just(0)),
        st.tuples(st.just("revoke"), st.integers(0, 2), st.just(0)),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(steps)
def test_released_records_always_form_a_decided_prefix_of_what_was_taken(
    plan: list[tuple[str, int, int]],
) -> None:
    ledger: OffsetLedger[tuple[int, int]] = OffsetLedger()
    model = Model()
    for kind, partition, n in plan:
        if kind == "take":  # a batch: the next n offsets of the partition, in order
            start = model.next_offset.get(partition, 0)
            for offset in range(start, start + n):
                assert ledger.take(partition, offset, (partition, offset))
                model.taken.setdefault(partition, []).append(offset)
            model.next_offset[partition] = start + n
        elif kind == "decide":
            taken = model.taken.get(partition, [])
            if taken:
                offset = taken[n % len(taken)]
                ledger.decide(partition, offset)
                model.decided.add((partition, offset))
        elif kind == "release":
            for partition_, offset in ledger.release():
                model.released.append((partition_, offset))
                model.released_since_revoke.setdefault(partition_, []).append(offset)
        else:  # a rebalance: the next owner starts again after the last released offset
            ledger.revoke([partition])
            released = model.released_since_revoke.pop(partition, [])
            model.taken.pop(partition, None)
            model.next_offset[partition] = (max(released) + 1) if released else 0
            model.decided = {d for d in model.decided if d[0] != partition}
        for p, offsets in model.released_since_revoke.items():
            taken = model.taken.get(p, [])
            undecided = [o for o in taken if (p, o) not in model.decided]
            # What is released (and may be committed) is decided and below every undecided one.
            assert all((p, o) in model.decided for o in offsets)
            assert not undecided or max(offsets) < min(undecided)
            assert offsets == sorted(offsets) and len(offsets) == len(set(offsets))
    # Once everything is decided, everything is released.
    for partition, taken in model.taken.items():
        for offset in taken:
            ledger.decide(partition, offset)
    ledger.release()
    assert ledger.committable() == {} and ledger.undecided() == 0
