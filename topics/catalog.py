"""The topic catalog: every topic the fleet reads or writes, with its settings."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

DAY_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic as the fleet expects it to exist."""

    name: str
    partitions: int
    replication: int
    retention_ms: int | None = None  # None: the broker's default; -1: keep forever
    compacted: bool = False

    def configs(self) -> dict[str, str]:
        configs = {"cleanup.policy": "compact" if self.compacted else "delete"}
        if self.retention_ms is not None:
            configs["retention.ms"] = str(self.retention_ms)
        return configs


@dataclass(frozen=True, slots=True)
class TopicNames:
    """The names of the fleet's own topics under one prefix."""

    prefix: str

    def name(self, base: str) -> str:
        return f"{self.prefix}{base}"

    @property
    def commands(self) -> str:
        return self.name("commands")

    @property
    def command_replies(self) -> str:
        return self.name("commands.replies")

    @property
    def events(self) -> str:
        return self.name("events")

    @property
    def stored(self) -> str:
        return self.name("events.stored")

    @property
    def dlq(self) -> str:
        return self.name("events.dlq")

    @property
    def snapshot_rules(self) -> str:
        """The snapshotter's rule-state table changelog (compacted, partitioned as events.stored)."""
        return self.name("snapshot-rules.changelog")


def catalog(
    names: TopicNames,
    *,
    partitions: int,
    replication: int,
    downstream: Iterable[str] = (),
    retention_ms: int = 7 * DAY_MS,
) -> list[TopicSpec]:
    """The full list: the fleet's own topics plus every routed downstream topic.

    ``events.stored`` keeps events forever: it is the replayable log projections rebuild
    from when the store is not at hand. Dead letters are kept for 30 days for inspection. The
    snapshotter's rule-state changelog is compacted: the newest state per aggregate stays.
    """
    specs = [
        TopicSpec(names.commands, partitions, replication, retention_ms),
        TopicSpec(names.command_replies, partitions, replication, retention_ms),
        TopicSpec(names.events, partitions, replication, retention_ms),
        TopicSpec(names.stored, partitions, replication, -1),
        TopicSpec(names.dlq, partitions, replication, 30 * DAY_MS),
        TopicSpec(names.snapshot_rules, partitions, replication, compacted=True),
    ]
    seen = {spec.name for spec in specs}
    for base in downstream:
        name = names.name(base)
        if name not in seen:
            seen.add(name)
            specs.append(TopicSpec(name, partitions, replication, retention_ms))
    return specs
