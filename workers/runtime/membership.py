"""What a consumer process holds of its group: its share of the partitions, or none (idle).

The group's assignor (``workers.stream.assignor``) gives every member ⌊P/N⌋ or ⌈P/N⌉ of a
topic's P partitions; a member beyond P gets none. Such a member is *idle*: it has joined,
works, and takes a share at the next rebalance that has one for it (a member leaving, the
topics growing). It is ready (``/readyz`` 200, saying ``idle``): were it not, a Deployment's
rollout would wait on it for ever and its PodDisruptionBudget would count it as disrupted and
block node drains. A member between a revocation and its next assignment holds nothing yet
and is not ready.

``eventfleet_assigned_partitions{role,topic}`` counts the partitions held (a table's changelog,
assigned beside its topic for recovery, is not counted) and ``eventfleet_role_idle{role}`` is 1
while the group gave it none.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Mapping

from workers.metrics import Metrics
from workers.stream.faust_types import Partitions


class Membership:
    """The partitions this process's consumer holds, per topic, as the rebalance signals say."""

    def __init__(
        self, metrics: Metrics, role: str, *, changelogs: Callable[[], Collection[str]]
    ) -> None:
        self._metrics = metrics
        self._role = role
        self._changelogs = changelogs
        self._held: Counter[str] | None = None  # None from a revocation to the next assignment
        self._topics: set[str] = set()  # every topic held so far: its gauge goes to 0, not away

    @property
    def assigned(self) -> bool:
        """The group gave this member its partitions (none, if it is idle) since the last
        revocation."""
        return self._held is not None

    @property
    def idle(self) -> bool:
        """Assigned no partition: the group has more members than the topic has partitions."""
        return self._held is not None and not self._held

    def held(self) -> Mapping[str, int]:
        """Partitions held per topic (empty while a rebalance goes on)."""
        return dict(self._held or {})

    async def on_assigned(
        self, sender: object, assigned: Partitions = None, **kwargs: object
    ) -> None:
        changelogs = set(self._changelogs())
        self._held = Counter(tp.topic for tp in assigned or () if tp.topic not in changelogs)
        self._report()

    async def on_revoked(
        self, sender: object, revoked: Partitions = None, **kwargs: object
    ) -> None:
        self._held = None
        self._report()

    def _report(self) -> None:
        held = self._held or Counter()
        self._topics.update(held)
        for topic in self._topics:
            self._metrics.assigned_partitions.labels(self._role, topic).set(held[topic])
        self._metrics.role_idle.labels(self._role).set(1 if self.idle else 0)
