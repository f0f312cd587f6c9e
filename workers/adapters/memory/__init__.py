"""In-memory adapters: each port's contract kept in dictionaries, for fast tests of role logic.

They raise what the real adapters raise (the contract tests in ``tests/contracts`` run both),
and a test can take any of them down, fail or hold its next calls (``Switchable``) to prove
pause-and-retry. ``workers.runtime.adapters.memory_adapters`` composes a whole process of them
(``fleet``); no deployed process does.
"""

from __future__ import annotations

from workers.adapters.memory.actions import MemoryActionLog
from workers.adapters.memory.budgets import MemoryWriteBudgets
from workers.adapters.memory.common import Faults, Switchable
from workers.adapters.memory.documents import MemoryDocuments
from workers.adapters.memory.events import MemoryEventStore
from workers.adapters.memory.fleet import MemoryLogProbe, MemoryMarks, MemoryStores, MemoryStream
from workers.adapters.memory.keys import MemoryKeyStore
from workers.adapters.memory.ladder import MemorySnapshotLadder
from workers.adapters.memory.live import MemoryLiveFeed
from workers.adapters.memory.positions import MemoryPositions
from workers.adapters.memory.processes import MemoryProcessInstances
from workers.adapters.memory.producer import MemoryProducer, murmur2, partition_for
from workers.adapters.memory.progress import MemoryAppendProgress
from workers.adapters.memory.redis import MemoryCommandMemory, MemoryMarker
from workers.adapters.memory.rejections import MemoryRejections
from workers.adapters.memory.rules import MemoryRuleStates
from workers.adapters.memory.snapshots import MemorySnapshotStore
from workers.adapters.memory.tickets import MemoryTicketStore
from workers.adapters.memory.views import MemoryDatabase, MemoryViewStaging, MemoryViewStore

__all__ = [
    "Faults",
    "MemoryActionLog",
    "MemoryAppendProgress",
    "MemoryCommandMemory",
    "MemoryDatabase",
    "MemoryDocuments",
    "MemoryEventStore",
    "MemoryKeyStore",
    "MemoryLiveFeed",
    "MemoryLogProbe",
    "MemoryMarker",
    "MemoryMarks",
    "MemoryPositions",
    "MemoryProcessInstances",
    "MemoryProducer",
    "MemoryRejections",
    "MemoryRuleStates",
    "MemorySnapshotLadder",
    "MemorySnapshotStore",
    "MemoryStores",
    "MemoryStream",
    "MemoryTicketStore",
    "MemoryViewStaging",
    "MemoryViewStore",
    "MemoryWriteBudgets",
    "Switchable",
    "murmur2",
    "partition_for",
]
