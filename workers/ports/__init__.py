"""The ports: every dependency role logic touches, as narrow Protocols, and the values they move.

One module per concern, each value beside the port that moves it: ``store`` (the event store,
its search, moves and publish flags, the sync-mode appender), ``state`` (snapshots, the ladder,
the rule's memory, views), ``stream`` (Kafka: producing, reading, positions, the appender's
progress), ``marks`` (Redis: the marker, the command memory, tickets), ``budgets`` (Redis:
per-principal write budgets), ``live`` (the bus and the live feed), ``ops`` (rejections,
parked aggregates, the operator audit trail) and ``keys`` (personal data's keys). Every name is offered here; import it from ``workers.ports``.

Role logic (``workers.roles``) imports only this package, ``workers.metrics``, ``topics`` and
``snapshot_rules``. Each port has a real adapter (``workers.adapters.<technology>``) and an
in-memory one (``workers.adapters.memory``) that raises the same errors; one contract test
suite runs against both. No driver type appears in a signature here.
"""

from __future__ import annotations

from snapshot_rules.projection import LIVE, ViewDoc
from topics.envelope import NEW_AGGREGATE
from workers.ports.budgets import (
    Bucket,
    Budget,
    BudgetDraw,
    WriteBudgets,
    budget_table,
    full_after_ms,
    take_token,
)
from workers.ports.keys import DataKey, Erasure, KeyStore
from workers.ports.live import (
    EventBus,
    Handler,
    Listening,
    LiveChannel,
    LiveDeliver,
    LiveFeed,
    Subscription,
)
from workers.ports.marks import (
    UNKNOWN,
    CommandMemory,
    CommandRecord,
    Marker,
    MarkRequest,
    MarkResult,
    TicketLimits,
    TicketStore,
)
from workers.ports.ops import (
    PARKED,
    STORE_VERDICTS,
    ActionLog,
    OperatorAction,
    ParkedEntry,
    ParkedEvents,
    Rejection,
    Rejections,
    ReplayClaim,
    Told,
    check_head,
)
from workers.ports.state import (
    RuleState,
    RuleStates,
    Snapshot,
    SnapshotLadder,
    SnapshotStore,
    ViewStaging,
    ViewStore,
)
from workers.ports.store import (
    AggregateRef,
    AppendConflict,
    ArchivableEvents,
    AtomicAppends,
    EventQuery,
    EventSearch,
    EventStore,
    Head,
    PendingEvents,
    SearchPosition,
    StoredEvents,
    SyncAppender,
    SyncResult,
)
from workers.ports.stream import (
    AppendProgress,
    Delivery,
    LogProbe,
    Outgoing,
    Positions,
    Producer,
    Record,
    TopicTail,
    TopicWindow,
    WrittenLog,
)

__all__ = [
    "LIVE",
    "NEW_AGGREGATE",
    "PARKED",
    "STORE_VERDICTS",
    "UNKNOWN",
    "ActionLog",
    "AggregateRef",
    "AppendConflict",
    "AppendProgress",
    "ArchivableEvents",
    "AtomicAppends",
    "Bucket",
    "Budget",
    "BudgetDraw",
    "CommandMemory",
    "CommandRecord",
    "DataKey",
    "Delivery",
    "Erasure",
    "EventBus",
    "EventQuery",
    "EventSearch",
    "EventStore",
    "Handler",
    "Head",
    "KeyStore",
    "Listening",
    "LiveChannel",
    "LiveDeliver",
    "LiveFeed",
    "LogProbe",
    "MarkRequest",
    "MarkResult",
    "Marker",
    "OperatorAction",
    "Outgoing",
    "ParkedEntry",
    "ParkedEvents",
    "PendingEvents",
    "Positions",
    "Producer",
    "Record",
    "Rejection",
    "Rejections",
    "ReplayClaim",
    "RuleState",
    "RuleStates",
    "SearchPosition",
    "Snapshot",
    "SnapshotLadder",
    "SnapshotStore",
    "StoredEvents",
    "Subscription",
    "SyncAppender",
    "SyncResult",
    "TicketLimits",
    "TicketStore",
    "Told",
    "TopicTail",
    "TopicWindow",
    "ViewDoc",
    "ViewStaging",
    "ViewStore",
    "WriteBudgets",
    "WrittenLog",
    "budget_table",
    "check_head",
    "full_after_ms",
    "take_token",
]
