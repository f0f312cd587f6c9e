"""The topic catalog: prefixed names, downstream topics without duplicates, topic configs."""

from __future__ import annotations

import pytest

from topics.catalog import DAY_MS, TopicNames, TopicSpec, catalog

NAMES = TopicNames("t1.")


def test_names_carry_the_prefix() -> None:
    assert NAMES.events == "t1.events"
    assert NAMES.stored == "t1.events.stored"
    assert NAMES.dlq == "t1.events.dlq"
    assert NAMES.commands == "t1.commands"
    assert NAMES.command_replies == "t1.commands.replies"
    assert NAMES.snapshot_rules == "t1.snapshot-rules.changelog"
    assert NAMES.name("orders") == "t1.orders"
    assert TopicNames("").events == "events"


def test_the_fleet_topics_come_first_with_their_retention() -> None:
    specs = catalog(NAMES, partitions=6, replication=3)
    by_name = {spec.name: spec for spec in specs}
    assert [spec.name for spec in specs] == [
        "t1.commands",
        "t1.commands.replies",
        "t1.events",
        "t1.events.stored",
        "t1.events.dlq",
        "t1.snapshot-rules.changelog",
    ]
    assert all(spec.partitions == 6 and spec.replication == 3 for spec in specs)
    assert by_name["t1.events"].retention_ms == 7 * DAY_MS
    assert by_name["t1.events.stored"].retention_ms == -1  # the replayable log
    assert by_name["t1.events.dlq"].retention_ms == 30 * DAY_MS
    # The snapshotter's table changelog: compacted, partitioned like events.stored.
    rules = by_name["t1.snapshot-rules.changelog"]
    # min.insync.replicas as every topic: replication 3 keeps two copies of each write.
    assert rules.compacted and rules.configs() == {
        "cleanup.policy": "compact",
        "min.insync.replicas": "2",
    }
    assert [spec.name for spec in specs if spec.compacted] == [rules.name]


def test_downstream_topics_are_prefixed_and_deduplicated() -> None:
    specs = catalog(
        NAMES,
        partitions=2,
        replication=1,
        downstream=["orders", "accounts", "orders", "events"],
        retention_ms=DAY_MS,
    )
    names = [spec.name for spec in specs]
    assert names.count("t1.orders") == 1
    assert names.count("t1.events") == 1
    assert names[-2:] == ["t1.orders", "t1.accounts"]
    # A downstream topic that collides with a fleet topic keeps the fleet topic's settings.
    assert next(s for s in specs if s.name == "t1.events").retention_ms == DAY_MS
    assert next(s for s in specs if s.name == "t1.events.stored").retention_ms == -1
    assert next(s for s in specs if s.name == "t1.orders") == TopicSpec("t1.orders", 2, 1, DAY_MS)


def test_no_downstream_means_only_the_fleet_topics() -> None:
    assert len(catalog(NAMES, partitions=1, replication=1, downstream=iter(()))) == 6


def test_configs_state_the_cleanup_policy_retention_and_min_insync() -> None:
    assert TopicSpec("a", 1, 1).configs() == {
        "cleanup.policy": "delete",
        "min.insync.replicas": "1",
    }
    assert TopicSpec("a", 1, 1, retention_ms=1000).configs() == {
        "cleanup.policy": "delete",
        "min.insync.replicas": "1",
        "retention.ms": "1000",
    }
    assert TopicSpec("a", 1, 1, retention_ms=-1).configs()["retention.ms"] == "-1"
    assert TopicSpec("a", 1, 1, compacted=True).configs()["cleanup.policy"] == "compact"
    assert TopicSpec("a", 1, 1, retention_ms=5, compacted=True).configs() == {
        "cleanup.policy": "compact",
        "min.insync.replicas": "1",
        "retention.ms": "5",
    }


def test_min_insync_replicas_keeps_two_copies_where_replication_allows() -> None:
    # acks=all with a broker default of 1 would let a write live on one disk only.
    assert [TopicSpec("a", 1, r).min_insync for r in (1, 2, 3, 5)] == [1, 1, 2, 2]
    assert TopicSpec("a", 1, 5, min_insync_replicas=3).configs()["min.insync.replicas"] == "3"
    specs = catalog(NAMES, partitions=1, replication=3, downstream=["orders"])
    assert {s.configs()["min.insync.replicas"] for s in specs} == {"2"}


def test_a_min_insync_above_the_replication_factor_is_refused() -> None:
    with pytest.raises(ValueError, match="between 1 and its replication factor 3"):
        TopicSpec("a", 1, 3, min_insync_replicas=4)
    with pytest.raises(ValueError, match=r"min\.insync\.replicas 0"):
        catalog(NAMES, partitions=1, replication=1, min_insync_replicas=0)


def test_retention_comes_from_the_caller() -> None:
    specs = catalog(
        NAMES, partitions=1, replication=1, retention_ms=DAY_MS, dead_letter_retention_ms=2 * DAY_MS
    )
    by_name = {spec.name: spec for spec in specs}
    assert by_name["t1.commands"].retention_ms == DAY_MS
    assert by_name["t1.events.dlq"].retention_ms == 2 * DAY_MS
    assert by_name["t1.events.stored"].retention_ms == -1


def test_catalog_configs_are_all_strings() -> None:
    for spec in catalog(NAMES, partitions=1, replication=1, downstream=["orders"]):
        assert all(isinstance(v, str) for v in spec.configs().values())
