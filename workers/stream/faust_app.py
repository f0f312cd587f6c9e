"""A Faust app whose groups share partitions evenly (``assignor``), whose consumers honour our
fetch wait, connect like every other client, hand the batch agents whole fetches
(``fetched``), count, and start without Faust's idle second (``FleetTables``).

Faust hardcodes a 1500 ms fetch wait; Tansu does not release a long poll when data arrives,
so end-to-end latency equals the consumer's ``fetch_max_wait_ms``
(``EVENTFLEET_KAFKA_FETCH_MAX_WAIT_MS`` sets it). Rebalances and offset commits are timed into
the fleet's metrics (Faust's own Prometheus sensor uses milliseconds and other names).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol, TypedDict

import faust
from faust.auth import SASLCredentials, SSLCredentials
from faust.tables import TableManager
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, ServiceT, TransportT
from faust.types.auth import CredentialsT

from workers.adapters.kafka.config import KafkaConfig
from workers.adapters.kafka.join import JoinWatch, WatchedConsumer
from workers.metrics import Metrics
from workers.stream.assignor import FleetAssignor
from workers.stream.fetched import drain
from workers.stream.highwaters import fetched_highwaters


def faust_credentials(kafka: KafkaConfig) -> CredentialsT | None:
    """Faust's ``broker_credentials`` for our Kafka config (None: plaintext)."""
    if kafka.sasl:
        assert kafka.sasl_password is not None  # KafkaConfig checks it
        return SASLCredentials(
            username=kafka.sasl_username,
            password=kafka.sasl_password.reveal(),
            mechanism=kafka.sasl_mechanism,
            ssl_context=kafka.ssl_context,
        )
    if kafka.tls:
        return SSLCredentials(kafka.ssl_context)
    return None


class _WorkerConsumer(WatchedConsumer, Protocol):
    """What is set on the worker's AIOKafkaConsumer (aiokafka's own module is untyped)."""

    _fetch_max_wait_ms: int


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: faust_aiokafka.Transport) -> _WorkerConsumer:
        consumer: _WorkerConsumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = getattr(self.app, "fetch_max_wait_ms", 500)
        watch = self.app.join_watch() if isinstance(self.app, FleetApp) else None
        if watch is not None:
            watch.install(consumer)  # a join that does not complete in time acts (join.py)
        return consumer

    async def _highwaters(  # type: ignore[override]  # aiokafka may answer None; faust says int
        self, partitions: list[TP]
    ) -> Mapping[TP, int | None]:
        # Table recovery reads changelogs up to these: take them from a fetch (see highwaters).
        listed = await super()._highwaters(partitions)
        return await fetched_highwaters(
            lambda: self._create_client_consumer(self._aiokafka_transport()),
            listed,
            fetch_wait_ms=getattr(self.app, "fetch_max_wait_ms", 500),
        )

    def _aiokafka_transport(self) -> faust_aiokafka.Transport:
        transport = self.transport  # declared as the abstract TransportT; ours is aiokafka's
        assert isinstance(transport, faust_aiokafka.Transport)
        return transport


class _ReadOffsets(dict[TP, "int | None"]):
    """Faust's ``_read_offset`` (the last offset read per partition), which it uses to drop any
    record below it: after ``fence(tp)`` it answers None for ``tp`` (drop nothing) until the next
    rebalance seeks every partition, so the records of a seek back reach the agents even when
    records fetched before the seek were read after it (the offset ledger drops the repeats)."""

    def __init__(self) -> None:
        super().__init__()
        self._fenced: set[TP] = set()

    def fence(self, tp: TP) -> None:
        self._fenced.add(tp)

    def __missing__(self, tp: TP) -> None:
        return None

    def __getitem__(self, tp: TP) -> int | None:
        if tp in self._fenced:
            return None
        return super().__getitem__(tp)

    def update(  # type: ignore[override]  # faust passes one mapping; dict's overloads take more
        self, offsets: Mapping[TP, int | None] | Iterable[tuple[TP, int | None]], /
    ) -> None:  # perform_seek: a rebalance
        self._fenced.clear()
        super().update(offsets)

    def pop(  # type: ignore[override]  # one signature for dict's pop with and without a default
        self, tp: TP, *default: int | None
    ) -> int | None:
        self._fenced.discard(tp)  # a partition revoked
        return super().pop(tp, *default)


class FleetConsumer(faust_aiokafka.Consumer):
    def __init__(self, transport: TransportT, **kwargs: object) -> None:
        super().__init__(transport, **kwargs)
        self._read_offsets = _ReadOffsets()
        self._read_offset = self._read_offsets

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: ServiceT) -> None:
        # The batch agents' topics are handed over a fetched partition at a time (fetched.py).
        await drain(self, fetcher)

    async def seek_back(self, tp: TP, offset: int) -> None:
        """Fetch ``tp`` again from ``offset``; every record from there reaches the agents."""
        self._read_offsets.fence(tp)
        await self.seek_wait({tp: offset})

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        """Faust's guess, from a jump in the offsets it reads, that the skipped offsets (and the
        record read, too) are done: it would commit past records that never reached an agent.
        Here only the agents' offset ledgers decide that (``workers.stream.offsets``)."""

    async def skip_offsets(self, tp: TP, start: int, end: int) -> None:
        """``[start, end)`` of ``tp`` holds no record (checked with Kafka): commits may pass it."""
        if end > start:
            await super()._add_gap(tp, start, end - 1)

    async def _commit(self, offsets: Mapping[TP, int]) -> bool:
        app = self.app
        assert isinstance(app, FleetApp)  # _Transport is only ever FleetApp's
        started = time.perf_counter()
        try:
            ok = bool(await super()._commit(offsets))
        except BaseException:
            app.committed(time.perf_counter() - started, ok=False)
            raise
        app.committed(time.perf_counter() - started, ok=ok)
        return ok


def fleet_consumer(app: faust.App) -> FleetConsumer:
    """The app's consumer, the fleet's own (it seeks back, skips holes, reads highwaters).

    Raises TypeError if the app runs another consumer (it never does: ``FleetApp``'s transport
    makes this one)."""
    consumer = app.consumer
    if not isinstance(consumer, FleetConsumer):
        raise TypeError(f"the app's consumer is a {type(consumer).__name__}, not the fleet's")
    return consumer


class _Transport(faust_aiokafka.Transport):
    Consumer = FleetConsumer


class FleetTables(TableManager):
    """Faust's table manager without the second it sleeps at start.

    Faust's waits 1 s before it registers the app's tables, for a table declared after the app
    has started. Ours are all declared before (``workers.runtime.agents`` registers the agents
    and the snapshotter's rule table, then the app starts), and one declared later fails at
    once (``RuntimeError: Too late to add tables``): the second only delayed every worker's
    first join, restarts and rolling updates included (ready in about 3.8 s here, not 4.8).
    """

    async def on_start(self) -> None:
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()


class Assignment(TypedDict):
    """The settings of a FleetApp that make every member of its groups take its share."""

    PartitionAssignor: type[FleetAssignor]
    table_standby_replicas: int


ASSIGNMENT = Assignment(PartitionAssignor=FleetAssignor, table_standby_replicas=1)
"""Every FleetApp's (``FleetApp(id, **ASSIGNMENT, ...)``). Faust's aiokafka driver asks the app's
assignor only where standby replicas are set or tables declared, and aiokafka's round robin
otherwise, which deals every partition afresh at each rebalance: the 1 keeps ours for every
role. It assigns no standby, whatever this says."""


class FleetApp(faust.App):
    """faust.App with a configurable consumer fetch wait, and rebalance and commit metrics."""

    fetch_max_wait_ms: int = 500
    fleet_metrics: Metrics | None = None
    role_label: str = "all"
    _rebalance_started: float | None = None
    rebalance_generation: int = 0
    """Rebalances begun so far (the first assignment included)."""
    _rebalance_ended: float | None = None

    def _new_transport(self) -> TransportT:
        return _Transport(self.conf.broker_consumer, self)

    def on_rebalance_start(self) -> None:
        super().on_rebalance_start()
        self._rebalance_started = time.perf_counter()
        self._rebalance_ended = None
        self.rebalance_generation += 1
        if self.fleet_metrics is not None:
            self.fleet_metrics.rebalances.labels(self.role_label).inc()

    def on_rebalance_end(self) -> None:
        super().on_rebalance_end()
        started, self._rebalance_started = self._rebalance_started, None
        self._rebalance_ended = time.perf_counter()
        if self.fleet_metrics is not None and started is not None:
            self.fleet_metrics.rebalance_duration.labels(self.role_label).observe(
                time.perf_counter() - started
            )

    join_bound_s: float | None = None
    """How long a group join may go on without completing before the member acts (None: never)."""
    on_join_stuck: Callable[[str], None] | None = None
    """Called once when a join never completed however the member tried: the process exits."""

    def join_watch(self) -> JoinWatch | None:
        """A watch over the worker consumer's group join (``workers.adapters.kafka.join``)."""
        if self.join_bound_s is None:
            return None
        metrics, role = self.fleet_metrics, self.role_label

        def healed(action: str) -> None:
            if metrics is not None:
                metrics.group_rejoins.labels(role, action).inc()

        def stuck(reason: str) -> None:
            if self.on_join_stuck is not None:
                self.on_join_stuck(reason)

        return JoinWatch(bound_s=self.join_bound_s, on_heal=healed, on_stuck=stuck)

    def settled_for(self, seconds: float) -> bool:
        """The last rebalance ended (streams resumed) at least ``seconds`` ago."""
        ended = self._rebalance_ended
        return ended is not None and time.perf_counter() - ended >= seconds

    def committed(self, seconds: float, *, ok: bool) -> None:
        """One offset commit round trip ended (``ok``: Kafka accepted it)."""
        if self.fleet_metrics is None:
            return
        self.fleet_metrics.commit_latency.labels(self.role_label).observe(seconds)
        if not ok:
            self.fleet_metrics.commit_failures.labels(self.role_label).inc()


def knows_its_coordinator(app: FleetApp) -> bool:
    """The app's consumer knows its group coordinator: with Kafka gone it is marked dead.

    aiokafka keeps an assignment while the broker is unreachable; it marks the coordinator
    dead when a request to it fails or the session expires, and finds it again after.
    """
    consumer = app.consumer
    if not isinstance(consumer, faust_aiokafka.Consumer):  # always ours (_Transport's)
        return False
    try:
        client = consumer._thread._consumer
        return client is not None and client._coordinator.coordinator_id is not None
    except AttributeError:  # not started yet
        return False


def committed_position(app: FleetApp, tp: TP) -> int:
    """The next offset the app's consumer will commit from on ``tp`` (0 before any commit)."""
    consumer = app.consumer
    if not isinstance(consumer, faust_aiokafka.Consumer):  # always ours (_Transport's)
        return 0
    return int(consumer._committed_offset.get(tp) or 0)
