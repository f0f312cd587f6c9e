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
    min_insync_replicas: int | None = None  # None: derived from the replication factor

    def __post_init__(self) -> None:
        if self.min_insync_replicas is not None and not (
            1 <= self.min_insync_replicas <= self.replication
        ):
            raise ValueError(
                f"topic {self.name}: min.insync.replicas {self.min_insync_replicas} must be "
                f"between 1 and its replication factor {self.replication}."
            )

    @property
    def min_insync(self) -> int:
        """Replicas that must hold a write before acks=all answers.

        Without it a broker default of 1 lets an acks=all write live on one disk only; with
        replication 3 we ask for 2, so one broker may be down and every write still has two
        copies.
        """
        if self.min_insync_replicas is not None:
            return self.min_insync_replicas
        return max(1, min(2, self.replication - 1))

    def configs(self) -> dict[str, str]:
        configs = {
            "cleanup.policy": "compact" if self.compacted else "delete",
            "min.insync.replicas": str(self.min_insync),
        }
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
        """The snapshotter's rule-state table changelog (compacted, partitioned as
        events.stored)."""
        return self.name("snapshot-rules.changelog")


def catalog(
    names: TopicNames,
    *,
    partitions: int,
    replication: int,
    downstream: Iterable[str] = (),
    retention_ms: int = 7 * DAY_MS,
    dead_letter_retention_ms: int = 30 * DAY_MS,
    min_insync_replicas: int | None = None,
) -> list[TopicSpec]:
    """The full list: the fleet's own topics plus every routed downstream topic.

    ``events.stored`` keeps events forever: it is the replayable log projections rebuild
    from when the store is not at hand. Dead letters are kept for inspection
    (``dead_letter_retention_ms``, 30 days by default); the rest for ``retention_ms``. The
    snapshotter's rule-state changelog is compacted: the newest state per aggregate stays.
    """

    def spec(name: str, retention: int) -> TopicSpec:
        return TopicSpec(
            name, partitions, replication, retention, min_insync_replicas=min_insync_replicas
        )

    specs = [
        spec(names.commands, retention_ms),
        spec(names.command_replies, retention_ms),
        spec(names.events, retention_ms),
        spec(names.stored, -1),
        spec(names.dlq, dead_letter_retention_ms),
        TopicSpec(
            names.snapshot_rules,
            partitions,
            replication,
            compacted=True,
            min_insync_replicas=min_insync_replicas,
        ),
    ]
    seen = {s.name for s in specs}
    for base in downstream:
        name = names.name(base)
        if name not in seen:
            seen.add(name)
            specs.append(spec(name, retention_ms))
    return specs
