"""The fleet's partition assignor: every member of a group takes its share (issue 46).

Faust's assignor is sticky with a capacity of ⌈P/N⌉ per member while standby replicas are
configured (``table_standby_replicas``, 1 by default): the members keep up to ⌈P/N⌉ of what
they held, and a member joining a group where every partition is held within that capacity
gets none (faust-streaming/faust#93, open): two appenders on 4 partitions hold 2 each, a third
gets nothing, for ever. Without standbys it trims each member to ⌊P/N⌋ and deals the rest round
robin from the emptiest, which still leaves a member short from 7 partitions up (7 over 3
members: 1, 3, 3), and trims and deals again at every rebalance; Faust's aiokafka driver then
hands an app without tables to aiokafka's round robin assignor instead (faust#401, #402), which
deals every partition afresh at every rebalance.

``FleetAssignor`` keeps Faust's protocol (its name, version and metadata, so a group may mix it
with Faust's own during a rolling upgrade) and its copartitioning (topics with the same
partition count and subscribers are assigned together: the snapshotter's table changelog
partition follows its ``events.stored`` partition), and deals the active partitions itself
(``share``). It assigns no standby replica: no table of the fleet is worth one (the
snapshotter's rule states are rebuilt from their changelog when a partition moves).
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from faust.assignor import PartitionAssignor
from faust.assignor.client_assignment import (
    ClientAssignment,
    ClientMetadata,
    CopartitionedAssignment,
)
from faust.assignor.partition_assignor import MemberAssignmentMapping, MemberMetadataMapping


def share(held: Mapping[str, Collection[int]], partitions: int) -> dict[str, set[int]]:
    """Partitions ``0..partitions-1`` dealt to the members of ``held`` (what each holds now).

    Each member gets ⌊P/N⌋ or ⌈P/N⌉ (beyond P members, the rest none) and keeps as many of its
    own as that allows: the larger shares go to those holding most, so the fewest partitions
    move (none in a group that is already shared so; on a join only the joiner's share, on a
    leave only the leaver's). A partition two members claim (one was fenced and not told yet)
    goes, once each has kept what only it claims, to the first of them by name with room left.
    Deterministic: the answer depends only on its arguments.
    """
    members = sorted(held)
    if not members:
        return {}
    each, extra = divmod(partitions, len(members))
    claims = {name: sorted({p for p in held[name] if 0 <= p < partitions}) for name in members}
    claimants = Counter(p for name in members for p in claims[name])
    by_claims = sorted(members, key=lambda name: (-len(claims[name]), name))
    quota = {name: each + (rank < extra) for rank, name in enumerate(by_claims)}
    dealt: dict[str, set[int]] = {name: set() for name in members}
    taken: set[int] = set()
    for contested in (False, True):  # what only one claims first, then what two do
        for name in members:
            mine = [p for p in claims[name] if (claimants[p] > 1) == contested and p not in taken]
            kept = mine[: quota[name] - len(dealt[name])]
            dealt[name].update(kept)
            taken.update(kept)
    free = iter(sorted(set(range(partitions)) - taken))
    for name in members:
        dealt[name].update(itertools.islice(free, quota[name] - len(dealt[name])))
    return dealt


class Cluster(Protocol):
    """What the assignor reads of the cluster (aiokafka's ``ClusterMetadata``)."""

    def partitions_for_topic(self, topic: str) -> set[int] | None: ...


@dataclass(frozen=True, slots=True)
class Copartitioned:
    """Topics assigned together: the same partition count, the same subscribers."""

    topics: frozenset[str]
    partitions: int
    members: frozenset[str]


def copartitioned(
    partitions_of: Mapping[str, int], subscriptions: Mapping[str, Iterable[str]]
) -> list[Copartitioned]:
    """The copartitioned groups of the subscribed topics (``partitions_of``: each one's count;
    a topic the cluster does not know yet is left out until it does), in a stable order."""
    subscribers: dict[str, set[str]] = defaultdict(set)
    for name, topics in subscriptions.items():
        for topic in topics:
            subscribers[topic].add(name)
    grouped: dict[tuple[int, frozenset[str]], set[str]] = defaultdict(set)
    for topic, names in subscribers.items():
        if partitions_of.get(topic, 0) > 0:
            grouped[(partitions_of[topic], frozenset(names))].add(topic)
    return [
        Copartitioned(frozenset(topics), count, names)
        for (count, names), topics in sorted(grouped.items(), key=lambda kv: sorted(kv[1]))
    ]


class FleetAssignor(PartitionAssignor):
    """Faust's assignor with the active partitions dealt by ``share`` and no standby."""

    def _perform_assignment(
        self, cluster: Cluster, member_metadata: MemberMetadataMapping
    ) -> MemberAssignmentMapping:
        if any(table.is_global for table in self.app.tables.values()):
            # A global table is read whole by every member, as Faust's standbys: its assignor.
            return super()._perform_assignment(cluster, member_metadata)
        clients = {m: ClientMetadata.loads(md.user_data) for m, md in member_metadata.items()}
        subscriptions = {m: list(md.subscription) for m, md in member_metadata.items()}
        topics = {t for subscribed in subscriptions.values() for t in subscribed}
        partitions_of = {t: len(cluster.partitions_for_topic(t) or ()) for t in topics}
        self._update_member_urls(clients)
        assignments = {m: ClientAssignment(actives={}, standbys={}) for m in member_metadata}
        # Faust numbers its groups by partition count (the transactional ids of exactly-once).
        numbers = {count: n for n, count in enumerate(sorted(set(partitions_of.values()) - {0}))}
        topic_groups: dict[str, int] = {}
        for group in copartitioned(partitions_of, subscriptions):
            previous = {
                m: clients[m].assignment.copartitioned_assignment(set(group.topics)).actives
                for m in group.members
            }
            for m, dealt in share(previous, group.partitions).items():
                assignments[m].add_copartitioned_assignment(
                    CopartitionedAssignment(actives=dealt, topics=set(group.topics))
                )
            topic_groups.update(dict.fromkeys(group.topics, numbers[group.partitions]))
        return self._protocol_assignments(
            assignments,
            self._get_changelog_distribution(assignments),
            self._get_external_topic_distribution(assignments),
            topic_groups,
        )
