"""The snapshotter's rule states in a Faust table whose changelog is a compacted catalog topic.

Keys are the aggregate's Kafka key (``<type>:<id>``) and the table uses the producer's
partitioner, so a rule state lands in the changelog partition with the same number as the
aggregate's events.stored partition. The fleet's assignor (``assignor``) gives co-partitioned
topics (same partition count, same subscribers) to the same worker, with no standby replica
(rule states are cheap to rebuild: the extra traffic is not worth it), and Faust recovers a
newly assigned partition's table entries from the changelog before the agent sees its events:
every(n) and interval(s) count on across restarts and rebalances without reading MongoDB.

The table holds at most ``max_entries`` aggregates; the least recently used are deleted
(tombstones, which compaction removes), so memory and the topic stay bounded. A forgotten
aggregate's snapshot document is read once when it shows up again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import MutableMapping

import faust

from topics.envelope import aggregate_key, parse_utc
from topics.errors import InvalidEnvelope
from workers.ports import AggregateRef, RuleState, RuleStates

TABLE = "snapshot-rules"
MAX_ENTRIES = 200_000


Table = MutableMapping[bytes, object]
"""The rule states as this module keeps them: the aggregate's Kafka key to a JSON value."""


def rule_table(app: faust.App, *, topic: str, partitions: int) -> Table:
    """Declare the table on ``app`` (before it starts); ``topic`` comes from the catalog."""
    changelog = app.topic(
        topic,
        key_serializer="raw",
        value_serializer="json",
        partitions=partitions,
        compacting=True,
        deleting=False,
        # As Faust's own changelogs: no stream reads it, so it must not count as an acking
        # topic. Faust's livelock check would otherwise call every changelog partition with a
        # write "not processing" once stream_processing_timeout passed (an ERROR each tick).
        acks=False,
    )
    return app.Table(
        TABLE,
        default=None,
        partitions=partitions,
        changelog_topic=changelog,
        key_type=bytes,  # raw: the bytes of the aggregate's Kafka key; values are JSON
        use_partitioner=True,
    )


class FaustRuleStates:
    """``RuleStates`` over a Faust table (a mapping whose writes go to its changelog)."""

    def __init__(self, table: Table, *, max_entries: int = MAX_ENTRIES) -> None:
        self._table = table
        self._max = max_entries
        self._recent: OrderedDict[bytes, None] = OrderedDict()

    def get(self, aggregate: AggregateRef) -> RuleState | None:
        key = aggregate_key(*aggregate)
        return decode_state(self._table.get(key))

    def put(self, aggregate: AggregateRef, state: RuleState) -> None:
        key = aggregate_key(*aggregate)
        self._table[key] = encode_state(state)
        self._recent[key] = None
        self._recent.move_to_end(key)
        while len(self._recent) > self._max:
            oldest, _ = self._recent.popitem(last=False)
            self._table.pop(oldest, None)
        if len(self._table) > self._max:  # recovered entries this process never touched
            for stale in [k for k in list(self._table.keys()) if k not in self._recent]:
                self._table.pop(stale, None)
                if len(self._table) <= self._max:
                    break


def encode_state(state: RuleState) -> dict[str, int | str | None]:
    when = state.event_time
    return {"v": state.version, "t": None if when is None else when.isoformat()}


def decode_state(raw: object) -> RuleState | None:
    """A changelog value as a rule state; anything unreadable counts as unknown (read again)."""
    if not isinstance(raw, dict) or isinstance(raw.get("v"), bool):
        return None
    version = raw.get("v")
    if not isinstance(version, int) or version < 0:
        return None
    try:
        when = None if raw.get("t") is None else parse_utc(raw["t"], "t")
    except InvalidEnvelope:
        return None
    return RuleState(version, when)


def _implements(states: FaustRuleStates) -> RuleStates:
    """Never called: mypy checks here that the class keeps the port's signatures."""
    return states
