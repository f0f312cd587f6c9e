"""The private internals of our dependencies the runtime relies on are still there.

pyproject pins faust-streaming and aiokafka at the versions tested; this test is what must
pass before a bound is raised. Each failure names the attribute, the version installed, who
uses it and why, so the fix is clear: keep the old version or port that use.
"""

from __future__ import annotations

import inspect
import re
from importlib.metadata import version
from pathlib import Path
from typing import Any

import aiokafka
import pytest
from aiokafka.client import AIOKafkaClient
from aiokafka.consumer.group_coordinator import GroupCoordinator
from aiokafka.protocol.group import JoinGroupRequest
from faust.app.base import App
from faust.assignor import PartitionAssignor
from faust.tables import TableManager
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import Message
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

ROOT = Path(__file__).resolve().parents[2]

# (package, owner, attribute, where we use it, why)
USES = [
    ("faust-streaming", faust_aiokafka.AIOKafkaConsumerThread, "_create_worker_consumer",
     "workers/stream/faust_app.py", "overridden to set the consumer's fetch wait"),
    ("faust-streaming", faust_aiokafka.Consumer, "_new_consumer_thread",
     "workers/stream/faust_app.py", "overridden to use our consumer thread"),
    ("faust-streaming", App, "_new_transport",
     "workers/stream/faust_app.py", "overridden to use our transport"),
    ("faust-streaming", faust_consumer.ThreadDelegateConsumer, "_commit",
     "workers/stream/faust_app.py", "wrapped to time offset commits"),
    ("faust-streaming", faust_consumer.ThreadDelegateConsumer, "_thread",
     "workers/stream/faust_app.py", "read to reach the aiokafka consumer for readiness"),
    ("faust-streaming", faust_aiokafka.AIOKafkaConsumerThread, "_consumer",
     "workers/stream/faust_app.py", "read to reach the aiokafka consumer for readiness"),
    ("faust-streaming", faust_consumer.Consumer, "_committed_offset",
     "workers/stream/faust_app.py", "read for the per-partition lag gauge"),
    ("faust-streaming", faust_consumer.Consumer, "_drain_messages",
     "workers/stream/faust_app.py", "overridden: batch topics are handed whole fetches"),
    ("faust-streaming", faust_consumer.Consumer, "_wait_next_records",
     "workers/stream/fetched.py", "called for each fetch, as Faust's getmany does"),
    ("faust-streaming", faust_consumer.Consumer, "_read_offset",
     "workers/stream/fetched.py", "read and set: records below it are dropped, as Faust does"),
    ("faust-streaming", faust_aiokafka.Consumer, "_to_message",
     "workers/stream/fetched.py", "a fetched record as the Message an agent acks"),
    ("faust-streaming", faust_consumer.Consumer, "_commit_every",
     "workers/stream/fetched.py", "a commit after so many acks, as Faust's fetch loop"),
    ("faust-streaming", faust_consumer.Consumer, "_n_acked",
     "workers/stream/fetched.py", "a commit after so many acks, as Faust's fetch loop"),
    ("faust-streaming", faust_consumer.Consumer, "_buffered_partitions",
     "workers/stream/fetched.py", "partitions paused for buffer pressure still deliver"),
    ("faust-streaming", faust_consumer.Consumer, "_stopped",
     "workers/stream/fetched.py", "the fetch loop ends when the consumer stops"),
    ("faust-streaming", faust_consumer.Consumer, "_add_gap",
     "workers/stream/faust_app.py", "overridden: only the agents' ledgers say what is done"),
    ("faust-streaming", Message, "refcount",
     "workers/stream/fetched.py", "set to the number of batch readers of a record"),
    ("faust-streaming", PartitionAssignor, "_perform_assignment",
     "workers/stream/assignor.py", "overridden: the active partitions dealt so each member has its share"),
    ("faust-streaming", PartitionAssignor, "_update_member_urls",
     "workers/stream/assignor.py", "called: the members' URLs, which Faust's assignment names"),
    ("faust-streaming", PartitionAssignor, "_get_changelog_distribution",
     "workers/stream/assignor.py", "called: which member holds each table partition, for Faust"),
    ("faust-streaming", PartitionAssignor, "_get_external_topic_distribution",
     "workers/stream/assignor.py", "called: which member holds each topic partition, for Faust"),
    ("faust-streaming", PartitionAssignor, "_protocol_assignments",
     "workers/stream/assignor.py", "called: each member's assignment encoded as Faust's members read it"),
    ("faust-streaming", TableManager, "_update_channels",
     "workers/stream/faust_app.py", "called: FleetTables starts as Faust's does, less its 1 s sleep"),
    ("aiokafka", aiokafka.AIOKafkaConsumer, "_fetch_max_wait_ms",
     "workers/stream/faust_app.py", "set: Faust hard-codes 1500 ms"),
    ("aiokafka", aiokafka.AIOKafkaConsumer, "_coordinator",
     "workers/stream/faust_app.py", "read: a dead coordinator makes a consumer unready"),
    ("aiokafka", GroupCoordinator, "coordinator_id",
     "workers/stream/faust_app.py", "read: None once the coordinator is marked dead"),
    ("aiokafka", aiokafka.AIOKafkaConsumer, "_client",
     "workers/adapters/kafka/join.py", "its send wrapped: the join watch sees JoinGroup and SyncGroup"),
    ("aiokafka", AIOKafkaClient, "send",
     "workers/adapters/kafka/join.py", "wrapped: the coordinator sends every group request through it"),
    ("aiokafka", JoinGroupRequest, "_group",
     "workers/adapters/kafka/join.py", "read: the group a stuck join is in, for the log"),
    ("aiokafka", JoinGroupRequest, "_member_id",
     "workers/adapters/kafka/join.py", "set: a stuck member joins again as the departed leader"),
    ("aiokafka", aiokafka.AIOKafkaProducer, "_partition",
     "workers/adapters/kafka/producer.py", "called: the partition of each record of a batch"),
    ("aiokafka", AIOKafkaClient, "_wait_on_metadata",
     "workers/adapters/kafka/producer.py", "called: a topic's partitions before batching"),
    ("uvicorn", RequestResponseCycle, "transport",
     "workers/http/edge/wire.py", "read (via the ASGI send's __self__): the live pushes' socket"),
    ("uvicorn", RequestResponseCycle, "chunked_encoding",
     "workers/http/edge/wire.py", "read: a pushed SSE write is one chunk of a chunked body"),
    ("uvicorn", RequestResponseCycle, "response_started",
     "workers/http/edge/wire.py", "read: nothing is pushed before the response's head"),
    ("uvicorn", RequestResponseCycle, "response_complete",
     "workers/http/edge/wire.py", "read: nothing is pushed after the response's last chunk"),
    ("uvicorn", RequestResponseCycle, "disconnected",
     "workers/http/edge/wire.py", "read: nothing is pushed to a client that left"),
    ("uvicorn", WebSocketsSansIOProtocol, "transport",
     "workers/http/edge/wire.py", "read (via the ASGI send's __self__): the live pushes' socket"),
    ("uvicorn", WebSocketsSansIOProtocol, "handshake_complete",
     "workers/http/edge/wire.py", "read: nothing is pushed before the WebSocket is accepted"),
    ("uvicorn", WebSocketsSansIOProtocol, "close_sent",
     "workers/http/edge/wire.py", "read: no frame is pushed after the close frame"),
    ("uvicorn", WebSocketsSansIOProtocol, "disconnected",
     "workers/http/edge/wire.py", "read: nothing is pushed to a client that left"),
    ("uvicorn", WebSocketsSansIOProtocol, "writable",
     "workers/http/edge/wire.py", "relied on: a send waits while the socket is over its mark"),
]  # fmt: skip


def has(owner: type, attribute: str) -> bool:
    """Defined on the class or its bases, or assigned or annotated in their source."""
    if hasattr(owner, attribute):
        return True
    pattern = re.compile(
        rf"self\.{re.escape(attribute)}\s*[:=]|^\s*{re.escape(attribute)}\s*:", re.M
    )
    for cls in owner.__mro__:
        try:
            source = inspect.getsource(cls)
        except (OSError, TypeError):
            continue
        if pattern.search(source):
            return True
    return False


@pytest.mark.parametrize(
    ("package", "owner", "attribute", "user", "why"),
    USES,
    ids=[f"{u[1].__name__}.{u[2]}" for u in USES],
)
def test_a_private_attribute_we_rely_on_is_still_there(
    package: str, owner: type, attribute: str, user: str, why: str
) -> None:
    assert has(owner, attribute), (
        f"{package} {version(package)} has no {owner.__module__}.{owner.__name__}.{attribute}, "
        f"which {user} relies on ({why}). Pin {package} to the version in constraints.txt, "
        "or port that code to the new internals."
    )


def test_the_checker_notices_a_missing_attribute() -> None:
    assert not has(faust_aiokafka.AIOKafkaConsumerThread, "_create_worker_consumer_v2")
    assert not has(aiokafka.AIOKafkaConsumer, "_fetch_max_wait")


HOMES = ("workers/stream/", "workers/adapters/kafka/", "workers/devtools/", "tests/",
         "workers/http/edge/wire.py")  # fmt: skip
"""Where a dependency's internals may be reached: Faust's in the stream room, aiokafka's
producer internals in its adapter, uvicorn's per-connection objects in the edge's wire, the
rest in tools and tests; nowhere else."""
FAUST_INTERNALS = ("_thread._consumer", "_committed_offset", "_coordinator.coordinator_id",
                   "_read_offset", "_drain_messages", "_wait_next_records", "_add_gap",
                   "_perform_assignment", "_protocol_assignments", "_update_channels")  # fmt: skip


@pytest.mark.parametrize("use", USES, ids=[f"{u[1].__name__}.{u[2]}" for u in USES])
def test_each_internal_is_used_where_it_is_listed_and_only_in_its_home(
    use: tuple[Any, ...],
) -> None:
    _, _, attribute, user, _ = use
    assert user.startswith(HOMES), f"{user} reaches {attribute}: move that use into {HOMES[0]}"
    path = ROOT / user
    if path.exists():  # the bench's counter read is listed by its package's old name
        assert attribute in path.read_text(), f"{user} no longer uses {attribute}: drop the entry"


def test_no_module_outside_the_stream_room_reaches_fausts_internals() -> None:
    found = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in sorted((ROOT / "workers").rglob("*.py"))
        if not str(path.relative_to(ROOT)).startswith(HOMES)
        for name in FAUST_INTERNALS
        if name in path.read_text()
    ]
    assert found == [], f"Faust's internals reached outside workers/stream: {found}"


def test_faust_starts_its_tables_as_fleet_tables_does_after_its_second() -> None:
    """``FleetTables.on_start`` is Faust's own less the sleep: should a release start its tables
    otherwise, this fails (port the change to FleetTables, or keep the version)."""
    body = [line.strip() for line in inspect.getsource(TableManager.on_start).splitlines()]
    steps = [line for line in body if line.startswith(("await", "if"))]
    assert steps == [
        "await self.sleep(1.0)",
        "if not self.should_stop:",
        "await self._update_channels()",
        "await self.recovery.start()",
    ], (version("faust-streaming"), steps)
