"""Fixtures of the integration tests: Redis topologies of their own (Sentinel, Cluster)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.redis_topologies import ClusterSet, SentinelSet, start_cluster, start_sentinel_set


@pytest.fixture
async def sentinel_set(tmp_path: Path) -> AsyncIterator[SentinelSet]:
    topology = await start_sentinel_set(tmp_path)
    yield topology
    topology.kill()


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[ClusterSet]:
    topology = await start_cluster(tmp_path)
    yield topology
    topology.kill()
