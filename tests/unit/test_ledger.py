"""The offset ledger: random interleavings of records taken, dropped on their way, decided,
released and revoked. What is released (acked, so committable) is always a contiguous run of
decided records from the group's commit: never past an undecided record, never past an offset
that never arrived."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from workers.stream.offsets import Gap, OffsetLedger


def test_nothing_is_released_past_a_record_still_undecided() -> None:
    ledger: OffsetLedger[str] = OffsetLedger()
    ledger.start(0, 0)
    for offset in range(5):
        assert ledger.take(0, offset, f"r{offset}") == "new"
    for offset in (1, 2, 4):
        ledger.decide(0, offset)
    assert ledger.release() == []  # offset 0 is still undecided
    assert ledger.committable() == {0: 0}
    ledger.decide(0, 0)
    assert ledger.release() == ["r0", "r1", "r2"]
    assert ledger.committable() == {0: 3}
    ledger.decide(0, 3)
    assert ledger.release() == ["r3", "r4"] and ledger.committable() == {}


def test_nothing_is_released_before_the_partition_s_start_is_known() -> None:
    ledger: OffsetLedger[str] = OffsetLedger()
    ledger.take(0, 7, "r7")
    ledger.decide(0, 7)
    assert ledger.release() == []
    assert ledger.gaps() == [Gap(0, None, 7)]
    ledger.start(0, 7)  # the group's committed offset
    assert ledger.gaps() == [] and ledger.release() == ["r7"]


def test_a_record_that_never_arrived_holds_back_everything_after_it() -> None:
    ledger: OffsetLedger[str] = OffsetLedger()
    ledger.start(2, 10)
    for offset in (10, 11, 14, 15):  # 12 and 13 were dropped on their way to the agent
        ledger.take(2, offset, f"r{offset}")
        ledger.decide(2, offset)
    assert ledger.release() == ["r10", "r11"]
    assert ledger.gaps() == [Gap(2, 12, 14)]
    assert ledger.release() == []  # decided, yet past a hole
    for offset in (12, 13, 14):  # redelivered after a seek back; 14 is held already
        ledger.take(2, offset, f"again{offset}")
        ledger.decide(2, offset)
    assert ledger.release() == ["again12", "again13", "r14", "again14", "r15"]
    assert ledger.gaps() == []


def test_a_hole_without_records_is_stepped_over_and_the_floor_never_moves_back() -> None:
    ledger: OffsetLedger[str] = OffsetLedger()
    ledger.start(0, 3)
    ledger.take(0, 5, "r5")  # 3 and 4: a transaction marker, a compacted record
    ledger.decide(0, 5)
    assert ledger.release() == []
    ledger.start(0, 5)
    ledger.start(0, 2)  # ignored: a floor never moves back
    assert ledger.release() == ["r5"] and ledger.gaps() == []
    assert ledger.take(0, 4, "late") == "done"  # below the floor: released, or committed


def test_records_below_the_group_s_commit_are_forgotten() -> None:
    ledger: OffsetLedger[str] = OffsetLedger()
    for offset in (3, 4, 5):  # fetched before the group's commit was known
        ledger.take(0, offset, f"r{offset}")
    ledger.start(0, 5)  # someone else decided up to here
    assert ledger.undecided() == 1 and ledger.committable() == {0: 5}
    ledger.decide(0, 4)  # ignored: not held any more
    ledger.decide(0, 5)
    assert ledger.release() == ["r3", "r4", "r5"]  # the forgotten ones are acked too


def test_a_record_delivered_twice_is_handled_once_and_both_deliveries_are_acked() -> None:
    ledger: OffsetLedger[str] = OffsetLedger()
    ledger.start(1, 7)
    assert ledger.take(1, 7, "first") == "new"
    assert ledger.take(1, 7, "again") == "copy"  # a seek back delivered it again
    ledger.decide(1, 7)
    assert ledger.release() == ["first", "again"] and ledger.release() == []
    assert ledger.take(1, 7, "third") == "done"  # released: the caller acks it at once


def test_revoked_partitions_are_forgotten_and_late_decisions_ignored() -> None:
    ledger: OffsetLedger[str] = OffsetLedger()
    ledger.start(0, 0)
    ledger.start(1, 0)
    ledger.take(0, 0, "a")
    ledger.take(1, 0, "b")
    ledger.revoke([0])
    ledger.decide(0, 0)  # the batch that held it finished after the rebalance
    ledger.decide(1, 0)
    assert ledger.release() == ["b"] and ledger.undecided() == 0
    assert ledger.partitions() == {1}
    ledger.take(0, 0, "a again")  # the next assignment starts unknown again
    assert ledger.gaps() == [Gap(0, None, 0)]


def test_a_seek_back_keeps_offsets_in_order() -> None:
    ledger: OffsetLedger[int] = OffsetLedger()
    ledger.start(0, 5)
    for offset in (10, 11, 5):
        ledger.take(0, offset, offset)
    for offset in (10, 11):
        ledger.decide(0, offset)
    assert ledger.release() == [] and ledger.committable() == {0: 5}
    ledger.decide(0, 5)
    assert ledger.release() == [5]  # 6..9 have not arrived
    assert ledger.gaps() == [Gap(0, 6, 10)]


@dataclass
class Model:
    """What a consumer would see: per partition, the next offset fetched, and what it decided."""

    log_end: dict[int, int] = field(default_factory=dict)  # offsets produced per partition
    fetched: dict[int, int] = field(default_factory=dict)  # the consumer's fetch position
    committed: dict[int, int] = field(default_factory=dict)
    taken: dict[int, list[int]] = field(default_factory=dict)  # since the last revoke
    decided: set[tuple[int, int]] = field(default_factory=set)
    started: set[int] = field(default_factory=set)


steps = st.lists(
    st.one_of(
        st.tuples(st.just("take"), st.integers(0, 2), st.integers(1, 4)),
        st.tuples(st.just("drop"), st.integers(0, 2), st.integers(1, 3)),
        st.tuples(st.just("decide"), st.integers(0, 2), st.integers(0, 30)),
        st.tuples(st.just("release"), st.just(0), st.just(0)),
        st.tuples(st.just("close"), st.integers(0, 2), st.just(0)),
        st.tuples(st.just("revoke"), st.integers(0, 2), st.just(0)),
    ),
    max_size=80,
)


@settings(max_examples=400, deadline=None)
@given(steps)
def test_released_records_are_always_a_decided_contiguous_run_from_the_commit(
    plan: list[tuple[str, int, int]],
) -> None:
    ledger: OffsetLedger[tuple[int, int]] = OffsetLedger()
    m = Model()
    for kind, partition, n in plan:
        if kind in ("take", "drop"):  # the next n records fetched: delivered, or lost on the way
            start = m.fetched.get(partition, m.committed.get(partition, 0))
            for offset in range(start, start + n):
                if kind == "take" and ledger.take(partition, offset, (partition, offset)) == "new":
                    m.taken.setdefault(partition, []).append(offset)
            m.fetched[partition] = start + n
            m.log_end[partition] = max(m.log_end.get(partition, 0), start + n)
        elif kind == "decide":
            taken = m.taken.get(partition, [])
            if taken:
                offset = taken[n % len(taken)]
                ledger.decide(partition, offset)
                m.decided.add((partition, offset))
        elif kind == "release":
            for p, offset in ledger.release():
                if offset < m.committed.get(p, 0):
                    continue  # another delivery of a record released with it: acked, harmless
                # Released means committable: it must be the very next offset of the partition.
                assert offset == m.committed.get(p, 0), (p, offset, m.committed)
                assert (p, offset) in m.decided
                m.committed[p] = offset + 1
        elif kind == "close":  # the gap closer: start at the commit, seek back over a hole
            for gap in ledger.gaps():
                if gap.partition != partition:
                    continue
                if gap.floor is None:
                    ledger.start(partition, m.committed.get(partition, 0))
                else:  # every offset holds a record here: the hole is redelivered
                    m.fetched[partition] = gap.floor
        else:  # a rebalance: the next owner (this ledger again) reads from the commit
            ledger.revoke([partition])
            m.taken.pop(partition, None)
            m.fetched.pop(partition, None)
            m.decided = {d for d in m.decided if d[0] != partition}
    # Once everything arrives and is decided, everything is released, in order.
    for partition, end in m.log_end.items():
        ledger.start(partition, m.committed.get(partition, 0))
        for offset in range(m.committed.get(partition, 0), end):
            ledger.take(partition, offset, (partition, offset))
            ledger.decide(partition, offset)
        for p, offset in ledger.release():
            if offset >= m.committed.get(p, 0):
                assert offset == m.committed.get(p, 0)
                m.committed[p] = offset + 1
        assert m.committed.get(partition, 0) == end
    assert ledger.undecided() == 0 and ledger.gaps() == []
