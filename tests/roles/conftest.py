"""Role logic on the in-memory adapters: fresh adapters, domains and metrics for every test."""

from __future__ import annotations

import pytest

from snapshot_rules.domain import Domains
from workers.adapters.memory import MemoryEventStore, MemoryProducer, MemorySnapshotStore
from workers.metrics import Metrics, create_metrics

from .chat import Wiring, wired
from .support import COUNTER, TIMED


@pytest.fixture
def domains() -> Domains:
    return Domains([COUNTER, TIMED])


@pytest.fixture
def metrics() -> Metrics:
    return create_metrics()


@pytest.fixture
def events() -> MemoryEventStore:
    return MemoryEventStore()


@pytest.fixture
def snapshots() -> MemorySnapshotStore:
    return MemorySnapshotStore()


@pytest.fixture
def producer() -> MemoryProducer:
    return MemoryProducer(default_partitions=3)


@pytest.fixture
def wiring(metrics: Metrics) -> Wiring:
    return wired(metrics)
