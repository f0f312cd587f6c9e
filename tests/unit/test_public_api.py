"""Which names each package offers: its ``__all__``, listed here, every one importable.

A change to a package's public API changes this list on purpose, in the same commit. A module a
package does not list is its internal machinery. The framework offers no example: nothing it
exports is defined in ``workers.examples``, and the examples' own packages are listed apart.
"""

from __future__ import annotations

import importlib

import pytest

PUBLIC = {
    "topics": ["catalog", "envelope", "errors", "jsonvalue"],
    "snapshot_rules": [
        "declaration", "domain", "personal", "process", "projection", "queries", "replay", "rules",
        "schema", "upcasting",
    ],
    "workers.examples": ["cqrs", "demo", "domains", "storage"],
    "workers.examples.domains": [
        "ACCOUNT", "CART", "CHAT_ROOM", "GAME", "ORDER", "ORDER_BOOK", "SHIPMENT", "all_domains",
        "chat_domains", "default_domains", "default_processes", "demo_processes",
    ],
    "workers": [
        "adapters", "bus", "cli", "client", "cqrs", "devtools", "metrics", "ports", "roles", "runtime",
        "storage",
    ],
    "workers.roles": ["append", "command", "deadletter", "ops", "outcomes", "personal", "process", "read", "retry", "state"],
    "workers.roles.command": [
        "async_mode", "budget", "commands", "fate", "intake", "ledger", "newfilter", "refusals", "requests",
        "resolver", "sync_mode",
    ],
    "workers.roles.append": ["appender", "bridge", "fates", "forwarder", "judge", "outbox"],
    "workers.roles.read": ["global_read", "live", "paging", "position", "projections", "snapshotter"],
    "workers.roles.ops": ["archive", "audit", "dlq_replay"],
    "workers.roles.process": ["desk", "polls", "runner", "steps"],
    "workers.runtime": ["adapters", "compose", "serve", "settings"],
    "workers.runtime.door": ["auth", "identity", "origins"],
    "workers.adapters": ["kafka", "memory", "mongo", "nats", "redis"],
    "workers.adapters.kafka": [
        "KafkaAppendProgress", "KafkaBusOptions", "KafkaConfig", "KafkaEventBus", "KafkaLagReader", "KafkaPositions",
        "KafkaProducer",
        "KafkaStream", "PartitionLag", "TopicReport", "ensure_topics", "escaped", "plain",
        "read_topic",
    ],
    "workers.adapters.mongo": [
        "ACTIONS", "DATA_KEYS", "ERASURES", "EVENTS", "EVENTS_ARCHIVE", "PROCESSES", "REJECTIONS", "SNAPSHOTS", "SNAPSHOT_LADDER", "Document", "MongoActionLog", "MongoClient",
        "MongoDocuments", "MongoEventStore", "MongoKeyStore", "MongoProcessInstances", "MongoRejections", "MongoSnapshotLadder", "MongoSnapshotStore", "MongoStores",
        "MongoViewStaging", "MongoViewStore", "connect", "database", "escaped",
    ],
    "workers.adapters.nats": ["NatsEventBus"],
    "workers.adapters.redis": [
        "SCRIPTS", "MarkTtls", "RedisBatcher", "RedisCommandMemory", "RedisEventBus", "RedisLiveFeed", "RedisMarker",
        "RedisMarks", "RedisTicketStore", "RedisWriteBudgets", "connect_redis", "describe_redis", "escaped",
    ],
    "workers.bus": [
        "ANY_TYPE", "BusClosed", "BusError", "BusUnavailable", "InProcessEventBus", "PullPolicy",
        "RetryPolicy",
    ],
    "workers.cqrs": [
        "AggregateFactory", "AggregateHandler", "AggregateRoot", "AppendEvent", "Command",
        "CommandHandler", "Decide", "Dispatcher", "DocumentAggregate", "DocumentHandler", "Handled",
        "NamedCommand", "Publisher", "Repository", "StateRejected", "UnknownCommand", "new_command",
        "register_aggregate",
    ],
    "workers.storage": [
        "AFTER_DOCUMENT_WRITE", "AFTER_EVENT_WRITE", "CachePolicy", "CacheStats", "ChainMapper",
        "Change", "ChangeEvents", "Changed", "CreateOrEdit", "DocumentDeleted", "DocumentStore",
        "DomainEvent", "Edit", "EventMapper", "EventSourcedStorage", "EventTypes", "FaultHook",
        "FaultPoint", "FieldChangedMapper", "HistoryCompacted", "apply_patch", "changed_paths",
        "merge_diff", "storage_domain",
    ],
    "workers.adapters.memory": [
        "Faults", "MemoryActionLog", "MemoryAppendProgress", "MemoryCommandMemory", "MemoryDatabase",
        "MemoryDocuments", "MemoryEventStore", "MemoryKeyStore", "MemoryLiveFeed", "MemoryMarker", "MemoryMarks", "MemoryPositions", "MemoryProcessInstances", "MemoryProducer",
        "MemoryRejections", "MemoryRuleStates", "MemorySnapshotLadder", "MemorySnapshotStore", "MemoryStores",
        "MemoryLogProbe", "MemoryStream", "MemoryTicketStore", "MemoryViewStaging", "MemoryViewStore", "MemoryWriteBudgets", "Switchable", "murmur2",
        "partition_for",
    ],
    "workers.devtools": ["embedded"],
    "workers.devtools.embedded": [
        "HOST", "INSTALL_FIX", "SYSTEM_REDIS_URL", "EmbeddedStack", "PortInUse",
        "ServiceProcess", "StackStartError", "StackUrls", "free_port",
    ],
    "workers.cli": ["main", "parser"],
    "workers.http.ryw": [
        "CHUNK", "DEFAULT_WAIT_MS", "MAX_WAIT_MS", "NOBODY", "Caller", "NotYetStored",
        "ReadAfter", "RefusedAtStore", "TooManyWaiters", "WaitBounds", "WaitingContext", "WriteWaiter",
    ],
    "workers.client": [
        "AnswerError", "ApiError", "Appended", "AppendedAll", "AppendedEvent", "ArgumentError",
        "AsyncClient", "Backoff", "Client", "ClientError", "Erased", "Event", "EventData",
        "EventPage", "GlobalEvent", "GlobalPage", "InstancePage", "Json", "JsonObject", "Outcome",
        "PendingDeadline", "ProcessInstance", "ProcessSummary", "RECONNECT", "Retrying", "State",
        "Stream", "ToAppend", "TokenSource", "TransportError", "errors",
    ],
    "workers.ports": [
        "ACTIVE", "ActionLog", "AggregateRef", "AppendConflict", "AppendItem", "AppendProgress",
        "ArchivableEvents", "AtomicAppends", "Bucket", "CAPABILITIES", "Capability",
        "CapabilityMissing", "EventAppend", "EventLookup", "EventScans", "EventSelect", "offered",
        "ScannableEvents", "Budget", "BudgetDraw", "CommandMemory",
        "CommandRecord", "DONE", "DataKey", "Deadline", "Delivery", "Erasure", "EventBus",
        "EventQuery", "EventSearch", "EventStore", "Fired", "Handler", "Head", "Instance",
        "KeyStore", "LIVE", "Listening", "LiveChannel", "LiveDeliver", "LiveFeed", "LogProbe",
        "stop_once_subscribed",
        "MarkPeek", "MarkRequest", "MarkResult", "Marker", "NEW_AGGREGATE", "OperatorAction",
        "Outgoing", "PARKED", "ParkedEntry", "ParkedEvents", "PendingCommand", "PendingEvents", "Positions",
        "ProcessInstances", "Producer", "RETRYING", "Record", "RefusedItem", "Rejection",
        "Rejections", "ReplayClaim", "RuleState", "RuleStates", "STATUSES", "STORE_VERDICTS",
        "STUCK", "SearchPosition", "Snapshot", "SnapshotLadder", "SnapshotStore", "StoredEvents",
        "Stuck", "Subscription", "SyncAppender", "SyncResult", "SyncResults", "TicketLimits",
        "TicketStore", "Told", "TopicPages", "TopicSlice", "TopicTail", "TopicWindow", "Trigger",
        "UNKNOWN", "ViewDoc", "ViewStaging", "ViewStore", "WriteBudgets", "WrittenLog",
        "budget_table", "check_head", "full_after_ms", "take_token",
    ],
}  # fmt: skip


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_each_package_offers_exactly_its_listed_names(package: str) -> None:
    module = importlib.import_module(package)
    assert sorted(module.__all__) == sorted(PUBLIC[package])
    for name in module.__all__:
        assert not name.startswith("_")
        if not hasattr(module, name):  # a public submodule
            importlib.import_module(f"{package}.{name}")


@pytest.mark.parametrize(
    "package", sorted(p for p in PUBLIC if not p.startswith("workers.examples")), ids=str
)
def test_the_framework_exports_no_example(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        value = getattr(module, name, None)
        home = getattr(value, "__module__", None) or getattr(value, "__name__", "")
        assert not str(home).startswith("workers.examples"), f"{package}.{name} is an example"
