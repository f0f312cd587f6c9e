"""Which names each package offers: its ``__all__``, listed here, every one importable.

A change to a package's public API changes this list on purpose, in the same commit.
"""

from __future__ import annotations

import importlib

import pytest

PUBLIC = {
    "topics": ["catalog", "envelope", "errors"],
    "snapshot_rules": [
        "declaration", "domain", "domains", "projection", "queries", "replay", "rules", "schema",
        "upcasting",
    ],
    "snapshot_rules.domains": [
        "ACCOUNT", "CART", "CHAT_ROOM", "GAME", "ORDER", "ORDER_BOOK", "all_domains",
        "chat_domains", "default_domains",
    ],
    "workers": [
        "adapters", "bus", "cli", "cqrs", "devtools", "metrics", "ports", "roles", "runtime",
        "storage",
    ],
    "workers.roles": [
        "appender", "audit", "commands", "deadletter", "dlq_replay", "forwarder", "judge", "newfilter",
        "outbox", "projections", "requests", "retry", "snapshotter", "state",
    ],
    "workers.runtime": ["compose", "serve", "settings"],
    "workers.adapters": ["kafka", "memory", "mongo", "redis"],
    "workers.adapters.memory": [
        "Faults", "MemoryActionLog", "MemoryAppendProgress", "MemoryCommandMemory", "MemoryDatabase", "MemoryEventStore", "MemoryMarker",
        "MemoryProducer", "MemoryRejections", "MemoryRuleStates", "MemorySnapshotStore", "MemoryViewStaging",
        "MemoryViewStore", "Switchable", "murmur2", "partition_for",
    ],
    "workers.devtools": ["embedded"],
    "workers.devtools.embedded": [
        "HOST", "INSTALL_FIX", "SYSTEM_REDIS_URL", "EmbeddedStack", "PortInUse",
        "ServiceProcess", "StackStartError", "StackUrls", "free_port",
    ],
    "workers.cli": ["main", "parser"],
    "workers.ports": [
        "LIVE", "NEW_AGGREGATE", "UNKNOWN", "ActionLog", "AggregateRef", "AppendConflict", "AppendProgress", "CommandMemory",
        "CommandRecord", "Delivery", "EventBus", "EventStore", "Handler", "Head", "MarkRequest",
        "MarkResult", "Marker", "OperatorAction", "Outgoing", "PendingEvents", "Producer", "Record", "Rejection", "ReplayClaim",
        "Rejections", "RuleState", "RuleStates", "Snapshot", "SnapshotStore", "Subscription", "SyncAppender", "SyncResult",
        "ViewDoc", "ViewStaging", "ViewStore", "check_read_back",
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


@pytest.mark.parametrize("package", ["workers.bus", "workers.storage", "workers.cqrs"])
def test_the_products_say_what_they_offer(package: str) -> None:
    module = importlib.import_module(package)
    assert module.__all__, f"{package} has an empty __all__"
    for name in module.__all__:
        assert getattr(module, name) is not None
