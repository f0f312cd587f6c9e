"""One fleet process: the roles it runs, their Faust app, probes, and a draining shutdown.

Probes answer from memory, never from a dependency: ``/healthz`` says the process works,
``/readyz`` that it can take the work it owns (started, not draining, and for a consumer role
a member of its group holding its share of the partitions, or idle beyond them:
``workers.runtime.membership``). Dependency health is checked in the background
(``workers.runtime.health``) and shown by ``/healthz?verbose`` and ``eventfleet_dependency_up``.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Awaitable, Callable, Collection, Sequence
from pathlib import Path
from types import TracebackType
from typing import Protocol

from topics.catalog import TopicSpec
from topics.errors import TopicsNotReady
from workers.adapters.kafka import TopicReport, ensure_topics
from workers.adapters.kafka.join import EXIT_GROUP_STUCK
from workers.metrics import prime
from workers.roles.deadletter import REASONS
from workers.runtime.audit import AuditLoop
from workers.runtime.compose import Runtime
from workers.runtime.connections import fleet_catalog
from workers.runtime.door.auth import Door
from workers.runtime.door.identity import Authenticator
from workers.runtime.door.origins import OriginPolicy
from workers.runtime.failures import a_failure
from workers.runtime.health import HealthMonitor, Ping
from workers.runtime.lag import LAG_ROLE, LagExporter, fleet_lag
from workers.runtime.membership import Membership
from workers.runtime.projection_lag import ProjectionLag
from workers.stream.commits import CaughtUpCommits
from workers.stream.faust_app import (
    ASSIGNMENT,
    FleetApp,
    FleetTables,
    committed_position,
    faust_credentials,
    knows_its_coordinator,
)
from workers.stream.faust_types import on_rebalance
from workers.stream.gaps import Ledger

log = logging.getLogger(__name__)

EXIT_FATAL = 70
EXIT_DRAIN_TIMEOUT = 75
"""The drain outlasted EVENTFLEET_DRAIN_TIMEOUT_S: unfinished work was left uncommitted."""
JOIN_BOUND_SESSIONS = 3
"""Session timeouts a group join may take before the member acts
(``workers.adapters.kafka.join``)."""
CONSUMER_ROLES = frozenset(
    {"appender", "snapshotter", "forwarder", "commands", "projection", "bridge", "pm"}
)
# Which dependencies each role's work needs: only those are checked and reported.
ROLE_SERVICES = {
    "commands": ("store", "marker", "stream"),
    "appender": ("store", "stream"),
    "snapshotter": ("store",),
    "forwarder": ("stream",),
    "projection": ("store",),
    "bridge": ("stream",),
    "pm": ("store", "marker", "stream"),  # its instances, and its commands through the door
    LAG_ROLE: ("stream",),
}


class HttpServer(Protocol):
    """What serves a process's HTTP (``workers.http.register`` builds it): bound at once, so its
    ``port`` is known before it starts; started before the Faust app, stopped in the drain."""

    port: int

    async def start(self) -> None: ...

    async def stop(self) -> None:
        """Stop taking connections, end the live ones, let the answers in flight finish."""

    def close_now(self) -> None:
        """Cut every connection still open (the drain's deadline passed)."""


class Fleet:
    """The Faust app of one process plus the bookkeeping a clean drain needs."""

    def __init__(
        self,
        runtime: Runtime,
        roles: Collection[str],
        *,
        app_id: str,
        projections: Collection[str] = (),
        authenticator: Authenticator | None = None,
    ) -> None:
        self.runtime = runtime
        # Who may call: the door every HTTP request but the probes passes (open if not given).
        self.door = Door(
            authenticator or Authenticator(), runtime.metrics, OriginPolicy.of(runtime.settings)
        )
        self.roles = frozenset(roles)
        self.draining = False
        self.started = False
        self.exit_code = 0
        self.drain_timed_out = False
        self.stopped = asyncio.Event()
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: set[asyncio.Task[object]] = set()
        self.ledgers: dict[str, Ledger] = {}  # per agent: what may be committed
        self.projections = tuple(projections)
        self.audit_loop: AuditLoop | None = None
        audit_s = runtime.settings.audit_interval_s
        if "snapshotter" in self.roles and audit_s > 0:
            self.audit_loop = AuditLoop(runtime, interval_s=audit_s)
        self._lag_series: set[tuple[str, str, str]] = set()
        if self.roles == {"projection"} and len(self.projections) == 1:
            self.role_label = f"projection-{self.projections[0]}"
        else:
            self.role_label = next(iter(self.roles)) if len(self.roles) == 1 else "all"
        self.http_port = runtime.settings.http_port
        self.http: HttpServer | None = None
        """Set by the command that serves (``workers.runtime.serve``), with ``http_port``."""
        self.membership = Membership(
            runtime.metrics, self.role_label, changelogs=lambda: self.app.tables.changelog_topics
        )
        self.app = self._make_app(app_id)
        self.consumes = bool(self.roles & CONSUMER_ROLES)
        self.commits = CaughtUpCommits(lambda: self.app.consumer.commit())
        """Asked for by an agent that settled all it was fetched (``workers.runtime.batches``)."""
        # Where the groups stand and which offsets hold records: the agents' gap closing.
        self.positions = runtime.adapters.stream.positions(
            fetch_max_wait_ms=runtime.settings.kafka_fetch_max_wait_ms
        )
        self.health = self._make_health()
        self.lag: LagExporter | None = None
        if LAG_ROLE in self.roles:
            self.lag = fleet_lag(runtime.kafka, runtime.metrics, runtime.settings, runtime.domains)
        self._prime_metrics()

    def _make_app(self, app_id: str) -> FleetApp:
        settings, kafka = self.runtime.settings, self.runtime.kafka
        session_s = settings.kafka_session_timeout_ms / 1000
        # Faust wants a data directory even with in-memory tables: keep it out of the cwd.
        datadir = Path(tempfile.gettempdir()) / "eventfleet-faust" / app_id
        datadir.mkdir(parents=True, exist_ok=True)
        app = FleetApp(
            app_id,
            broker=[f"kafka://{host}" for host in kafka.bootstrap_servers],
            broker_credentials=faust_credentials(kafka),
            store="memory://",
            datadir=datadir,
            # HTTP is served by the fleet's own server (workers.http.edge), not Faust's.
            web_enabled=False,
            broker_session_timeout=session_s,
            # Faust's default is 90 s: a consumer whose broker stopped answering would hold
            # its assignment (and stay ready) that long before marking the coordinator dead.
            broker_request_timeout=max(session_s, settings.kafka_timeout_ms / 1000) * 2,
            broker_heartbeat_interval=max(0.1, session_s / 6),
            broker_commit_interval=settings.kafka_commit_interval_ms / 1000,
            topic_disable_leader=True,
            topic_allow_declare=False,
            consumer_auto_offset_reset="earliest",
            producer_acks=-1,
            stream_wait_empty=False,
            TableManager=FleetTables,  # no idle second at start
            **ASSIGNMENT,  # every member of a group takes its share (workers.stream.assignor)
        )
        if not self.roles & CONSUMER_ROLES:
            # No agent (the lag role): a consumer would subscribe to nothing, which aiokafka
            # refuses with a TypeError that crashes Faust's conductor. Start none.
            app.boot_strategy = app.BootStrategy(app, enable_kafka_consumer=False)
        app.fetch_max_wait_ms = settings.kafka_fetch_max_wait_ms
        app.fleet_metrics = self.runtime.metrics
        app.role_label = self.role_label
        # A join still not complete after a few session timeouts acts (workers.adapters.kafka.join).
        app.join_bound_s = JOIN_BOUND_SESSIONS * session_s
        app.on_join_stuck = self._join_stuck
        on_rebalance(app, revoked=self.membership.on_revoked, assigned=self.membership.on_assigned)
        return app

    def _make_health(self) -> HealthMonitor:
        rt = self.runtime
        services = {s for role in self.roles for s in ROLE_SERVICES.get(role, ())}

        async def marker() -> None:
            if not await rt.marker.ping():
                raise ConnectionError("the marker's Redis did not answer PING")

        pings: dict[str, tuple[Ping, float]] = {
            "store": (rt.ping_store, rt.settings.mongo_timeout_ms / 1000),
            "marker": (marker, rt.settings.redis_timeout_ms / 1000),
            "stream": (rt.producer.ping, rt.settings.kafka_timeout_ms / 1000),
        }
        return HealthMonitor(
            {s: p for s, p in pings.items() if s in services},
            rt.metrics,
            role=self.role_label,
            interval_s=rt.settings.health_interval_s,
        )

    def _prime_metrics(self) -> None:
        rt = self.runtime
        domains = rt.domains
        prime(
            rt.metrics,
            role=self.role_label,
            roles=[r for r in self.roles if r in CONSUMER_ROLES],
            dead_letter_reasons=REASONS,
            aggregate_types=domains.names(),
            event_types=[(d.name, t) for d in domains for t in d.events]
            if "commands" in self.roles
            else (),
            projections=self.projections
            or (rt.domains.projections() if "projection" in self.roles else ()),
            downstream_topics=[rt.names.name(t) for t in domains.downstream_topics()]
            if "forwarder" in self.roles
            else (),
        )

    def batch(self, role: str) -> _InFlight:
        """Count work in flight; once draining, hold new work back (it stays unacked).

        An error escaping a consumer batch is one no retry can fix: rather than let Faust
        stall the partition silently, stop the process with the batch unacked, so it is
        redelivered to a healthy worker. (HTTP requests only fail themselves: ``serving``.)
        """
        return _InFlight(self, role)

    def serving(self) -> _Serving:
        """``with fleet.serving():`` an HTTP request in flight, counted for the drain.

        The caller refuses new work itself once draining (a 503 that says so), so unlike
        ``batch`` nothing is parked here: a plain context manager, no coroutine per request.
        """
        return _Serving(self)

    def _enter(self) -> None:
        self._inflight += 1
        self._idle.clear()

    def _leave(self) -> None:
        self._inflight -= 1
        if self._inflight == 0:
            self._idle.set()

    def spawn(self, work: Awaitable[object]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _join_stuck(self, reason: str) -> None:
        log.critical("%s cannot join its group: %s", self.role_label, reason)
        self.exit_code = EXIT_GROUP_STUCK
        self.stop()

    def fatal(self, role: str, exc: BaseException) -> None:
        log.critical("%s cannot continue: %r; stopping without acking the current batch", role, exc)
        self.exit_code = EXIT_FATAL
        self.stop()

    def stop(self) -> None:
        self.stopped.set()

    def alive(self) -> bool:
        """The process works: its app has not crashed and it is not stopping after a fatal error."""
        return not self.app.crashed and self.exit_code != EXIT_FATAL

    def readiness(self) -> dict[str, bool]:
        """Can this process take the work it owns? Answered from memory, at once.

        A consumer is ready once its group gave it its partitions: its share, or none when the
        group has more members than partitions (then it is ``idle``, and ready all the same:
        ``workers.runtime.membership`` says why).
        """
        checks = {"started": self.started, "running": not self.draining}
        if self.consumes:
            checks["assigned"] = self.membership.assigned and self._group_member()
        self.runtime.metrics.role_ready.labels(self.role_label).set(
            1 if all(checks.values()) else 0
        )
        return checks

    def idle(self) -> bool:
        """A member of its group that holds no partition: more members than partitions."""
        return self.consumes and self.membership.idle and self._group_member()

    def _group_member(self) -> bool:
        """The consumer knows its group coordinator: with Kafka gone it is marked dead."""
        return knows_its_coordinator(self.app)

    def refresh_gauges(self) -> None:
        """Consumer lag per assigned partition (the autoscaler's signal); revoked ones vanish."""
        consumer = self.app.consumer
        gauge = self.runtime.metrics.consumer_lag
        try:
            assignment = consumer.assignment()
        except Exception:  # not started yet
            return
        # A table's changelog is assigned for recovery and read from the table's own offsets,
        # never committed by the group: counting it would report its whole length as lag.
        changelogs = set(getattr(self.app.tables, "changelog_topics", ()))
        current = set()
        for tp in assignment:
            if tp.topic in changelogs:
                continue
            labels = (self.role_label, tp.topic, str(tp.partition))
            position = committed_position(self.app, tp)  # the next offset to read
            gauge.labels(*labels).set(max(0, (consumer.highwater(tp) or 0) - position))
            current.add(labels)
        for labels in self._lag_series - current:
            gauge.remove(*labels)
        self._lag_series = current

    def projection_lag(self, projection: str) -> ProjectionLag:
        """The lag gauge updater of one projection's agent."""
        return ProjectionLag(self.app, self.runtime.metrics, projection)

    async def drain(self) -> None:
        """Stop taking work, finish what is in flight, commit what is decided, leave the group.

        One deadline (``EVENTFLEET_DRAIN_TIMEOUT_S``) bounds the whole drain: the in-flight work
        gets most of it, the final commit and the shutdown the rest. What is not finished by
        then stays uncommitted (the offset ledger never lets a commit pass it) and goes to the
        partition's next owner; a dependency that is down cannot hold the process past it.
        """
        self.draining = True
        loop = asyncio.get_running_loop()
        timeout = self.runtime.settings.drain_timeout_s
        deadline = loop.time() + timeout
        reserve = min(5.0, timeout / 4)  # for the final commit and the shutdown
        try:
            async with asyncio.timeout_at(deadline - reserve):
                await self._idle.wait()
                if self._tasks:
                    await asyncio.gather(*self._tasks, return_exceptions=True)
        except TimeoutError:
            self.drain_timed_out = True
            undecided = sum(ledger.undecided() for ledger in self.ledgers.values())
            log.warning(
                "drain: in-flight work did not finish within %gs; %d records stay uncommitted "
                "and will be redelivered",
                timeout - reserve,
                undecided,
            )
        if self.consumes:
            try:
                async with asyncio.timeout(_left(loop, deadline, reserve / 2)):
                    await self.app.consumer.commit()
            except BaseException as e:
                if not a_failure(e):
                    raise
                log.warning("final commit failed: %r", e)
        http = self.http
        steps: list[tuple[str, Stop | None]] = [
            ("HTTP server", http.stop if http is not None else None),
            ("health checks", self.health.stop),
            ("lag exporter", self.lag.stop if self.lag is not None else None),
            ("Faust app", self.app.stop),
            ("positions", self.positions.stop),
            ("clients", self.runtime.stop),
        ]
        if await stop_in_turn(steps, deadline):
            self.drain_timed_out = True
        if http is not None:
            http.close_now()  # whatever the server still held: the process is leaving


Stop = Callable[[], Awaitable[object]]


async def stop_in_turn(steps: Sequence[tuple[str, Stop | None]], deadline: float) -> bool:
    """Stop each part in turn, each bounded by the drain's ``deadline`` (the loop's clock); True
    when one outlasted it.

    A part that fails to stop, outlasts the deadline or raises a CancelledError of its own (a
    library's task it cancelled, re-raised) is logged and the next is stopped all the same: a
    stray cancel from the Faust app would otherwise leave the store and Kafka clients open.
    Only a cancel of the draining task goes on.
    """
    loop = asyncio.get_running_loop()
    timed_out = False
    for step, stop in steps:
        if stop is None:
            continue
        try:
            async with asyncio.timeout(_left(loop, deadline, 0.5)):
                await stop()
        except TimeoutError:
            timed_out = True
            log.warning("drain: stopping the %s outlasted the drain deadline", step)
        except BaseException as e:
            if not a_failure(e):
                raise
            log.warning("drain: stopping the %s failed: %r", step, e)
    return timed_out


def _left(loop: asyncio.AbstractEventLoop, deadline: float, at_most: float) -> float:
    """Seconds left before ``deadline``, at most ``at_most``, never less than a moment."""
    return max(0.05, min(at_most, deadline - loop.time()))


async def ensure_catalog(runtime: Runtime) -> list[TopicSpec]:
    """Check the catalog's topics; create missing ones only with EVENTFLEET_TOPICS_AUTO_CREATE.

    A missing topic or a partition count that differs stops the worker: keys would be routed
    to other partitions than the data already there, which breaks per-aggregate order.
    """
    settings = runtime.settings
    specs = fleet_catalog(settings, runtime.domains)
    reports = await ensure_topics(runtime.kafka, specs, create=settings.topics_auto_create)
    missing = [r.name for r in reports if r.status == "missing"]
    if missing:
        raise TopicsNotReady(
            f"topics {', '.join(missing)} do not exist and this worker does not create topics; "
            "run `eventfleet topics ensure` (the topics-ensure Job) first, or set "
            "EVENTFLEET_TOPICS_AUTO_CREATE=true where workers may create topics."
        )
    mismatched = [f"{r.name} {r.detail}" for r in reports if r.status == "mismatch"]
    if mismatched:
        raise TopicsNotReady(
            f"{'; '.join(mismatched)}. Set EVENTFLEET_PARTITIONS={_found(reports)} to match the "
            "existing topics, or grow the topics (deploy/README.md, 'Changing the partition "
            "count') before starting workers."
        )
    return specs


def _found(reports: list[TopicReport]) -> str:
    counts = sorted({r.detail.split()[1] for r in reports if r.status == "mismatch"})
    return " or ".join(counts)


class _Serving:
    """``with fleet.serving()``: counts one HTTP request in flight."""

    __slots__ = ("_fleet",)

    def __init__(self, fleet: Fleet) -> None:
        self._fleet = fleet

    def __enter__(self) -> None:
        self._fleet._enter()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._fleet._leave()


class _InFlight:
    """``async with fleet.batch(role)``: a class, not a generator, since every batch enters it."""

    __slots__ = ("_fleet", "_role")

    def __init__(self, fleet: Fleet, role: str) -> None:
        self._fleet = fleet
        self._role = role

    async def __aenter__(self) -> None:
        if self._fleet.draining:
            await asyncio.Future()  # parked until the app stops and cancels us
        self._fleet._enter()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._fleet._leave()
        if isinstance(error, Exception):
            self._fleet.fatal(self._role, error)
