"""One fleet process: the roles it runs, their Faust app, readiness, and a draining shutdown."""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Awaitable, Collection, Sequence
from pathlib import Path
from typing import Any

from faust.types import TP

from topics.catalog import TopicSpec
from workers.adapters.kafka import ensure_topics, fleet_catalog
from workers.ports import Record
from workers.runtime.audit import AuditLoop
from workers.runtime.compose import Runtime
from workers.runtime.faust_app import FleetApp

log = logging.getLogger(__name__)

EXIT_FATAL = 70


class Fleet:
    """The Faust app of one process plus the bookkeeping a clean drain needs."""

    def __init__(
        self,
        runtime: Runtime,
        roles: Collection[str],
        *,
        app_id: str,
        projections: Collection[str] = (),
    ) -> None:
        settings = runtime.settings
        self.runtime = runtime
        self.roles = frozenset(roles)
        self.draining = False
        self.exit_code = 0
        self.stopped = asyncio.Event()
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._assigned = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self.projections = tuple(projections)
        self.audit_loop: AuditLoop | None = None
        if "snapshotter" in self.roles and settings.audit_interval_s > 0:
            self.audit_loop = AuditLoop(runtime, interval_s=settings.audit_interval_s)
        self._lag_series: set[tuple[str, str, str]] = set()
        if self.roles == {"projection"} and len(self.projections) == 1:
            self.role_label = f"projection-{self.projections[0]}"
        else:
            self.role_label = next(iter(self.roles)) if len(self.roles) == 1 else "all"
        session_s = settings.kafka_session_timeout_ms / 1000
        # Faust wants a data directory even with in-memory tables: keep it out of the cwd.
        datadir = Path(tempfile.gettempdir()) / "eventfleet-faust" / app_id
        datadir.mkdir(parents=True, exist_ok=True)
        self.app = FleetApp(
            app_id,
            broker=[f"kafka://{host}" for host in settings.kafka_bootstrap],
            store="memory://",
            datadir=datadir,
            web_enabled=True,
            web_host=settings.http_host,
            web_bind=settings.http_host,
            web_port=settings.http_port,
            broker_session_timeout=session_s,
            broker_heartbeat_interval=max(0.1, session_s / 6),
            broker_commit_interval=1.0,
            topic_disable_leader=True,
            topic_allow_declare=False,
            consumer_auto_offset_reset="earliest",
            producer_acks=-1,
            stream_wait_empty=False,
        )
        self.app.fetch_max_wait_ms = settings.kafka_fetch_max_wait_ms
        self.app.on_partitions_assigned.connect(self._on_assigned)  # type: ignore[arg-type]
        self.consumes = bool(
            self.roles & {"appender", "snapshotter", "forwarder", "commands", "projection", "bridge"}
        )

    async def _on_assigned(self, sender: Any, assigned: Any = None, **kwargs: Any) -> None:
        self._assigned = True

    def batch(self, role: str) -> _InFlight:
        """Count work in flight; once draining, hold new work back (it stays unacked).

        An error escaping a consumer batch is one no retry can fix: rather than let Faust
        stall the partition silently, stop the process with the batch unacked, so it is
        redelivered to a healthy worker. HTTP requests only fail themselves.
        """
        return _InFlight(self, role)

    def _enter(self) -> None:
        self._inflight += 1
        self._idle.clear()

    def _leave(self) -> None:
        self._inflight -= 1
        if self._inflight == 0:
            self._idle.set()

    def spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def fatal(self, role: str, exc: BaseException) -> None:
        log.critical("%s cannot continue: %r; stopping without acking the current batch", role, exc)
        self.exit_code = EXIT_FATAL
        self.stop()

    def stop(self) -> None:
        self.stopped.set()

    async def readiness(self) -> dict[str, bool]:
        checks = {"running": not self.draining, "store": await self.runtime.healthy("store")}
        if self.consumes:
            checks["assigned"] = self._assigned
        if "commands" in self.roles:
            checks["marker"] = await self.runtime.healthy("marker")
        self.runtime.metrics.role_ready.labels(self.role_label).set(
            1 if all(checks.values()) else 0
        )
        return checks

    def refresh_gauges(self) -> None:
        """Consumer lag per assigned partition (the autoscaler's signal); revoked ones vanish."""
        consumer: Any = self.app.consumer
        gauge = self.runtime.metrics.consumer_lag
        try:
            assignment = consumer.assignment()
        except Exception:  # not started yet
            return
        current = set()
        for tp in assignment:
            labels = (self.role_label, tp.topic, str(tp.partition))
            position = consumer._committed_offset.get(tp) or 0  # the next offset to read
            gauge.labels(*labels).set(max(0, (consumer.highwater(tp) or 0) - position))
            current.add(labels)
        for labels in self._lag_series - current:
            gauge.remove(*labels)
        self._lag_series = current

    def projection_lag(self, projection: str) -> ProjectionLag:
        """The lag gauge updater of one projection's agent."""
        return ProjectionLag(self, projection)

    async def drain(self) -> None:
        """Stop taking work, finish what is in flight, commit, leave the group."""
        self.draining = True
        timeout = self.runtime.settings.drain_timeout_s
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            if self._tasks:
                await asyncio.wait_for(
                    asyncio.gather(*self._tasks, return_exceptions=True), timeout
                )
        except TimeoutError:
            log.warning("drain timed out after %ss; unacked events will be redelivered", timeout)
        if self.consumes:
            try:
                await asyncio.wait_for(self.app.consumer.commit(), 5)
            except Exception as e:
                log.warning("final commit failed: %r", e)
        await self.app.stop()
        await self.runtime.stop()


async def ensure_catalog(runtime: Runtime) -> list[TopicSpec]:
    specs = fleet_catalog(runtime.settings, runtime.domains)
    for report in await ensure_topics(runtime.settings, specs):
        if report.status == "mismatch":
            log.warning("topic %s %s", report.name, report.detail)
    return specs


class ProjectionLag:
    """``projection_lag`` per partition: high-water mark minus the next offset to apply."""

    def __init__(self, fleet: Fleet, projection: str) -> None:
        self._fleet = fleet
        self._gauge = fleet.runtime.metrics.projection_lag
        self._projection = projection
        self._partitions: set[int] = set()

    def after(self, records: Sequence[Record]) -> None:
        """Record the lag on every partition of an applied batch; forget revoked partitions."""
        last: dict[TP, int] = {}
        for record in records:
            tp = TP(record.topic, record.partition)
            last[tp] = max(last.get(tp, -1), record.offset)
        consumer: Any = self._fleet.app.consumer
        try:
            assigned = {tp.partition for tp in consumer.assignment()}
            for tp, offset in last.items():
                lag = max(0, (consumer.highwater(tp) or 0) - offset - 1)
                self._gauge.labels(self._projection, str(tp.partition)).set(lag)
                self._partitions.add(tp.partition)
        except Exception:  # mid-rebalance: the next batch records it
            return
        for partition in self._partitions - assigned:
            self._gauge.remove(self._projection, str(partition))
        self._partitions &= assigned


class _InFlight:
    """``async with fleet.batch(role)``: a class, not a generator, since every request enters it."""

    __slots__ = ("_fleet", "_role")

    def __init__(self, fleet: Fleet, role: str) -> None:
        self._fleet = fleet
        self._role = role

    async def __aenter__(self) -> None:
        if self._fleet.draining:
            await asyncio.Future()  # parked until the app stops and cancels us
        self._fleet._enter()

    async def __aexit__(self, kind: type[BaseException] | None, error: Any, tb: Any) -> None:
        self._fleet._leave()
        if isinstance(error, Exception) and self._role != "http":
            self._fleet.fatal(self._role, error)
