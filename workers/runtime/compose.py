"""The services of one fleet process: its adapters and the roles' logic over them, built once."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from snapshot_rules.domain import Domains, Mode
from snapshot_rules.process import Processes
from topics.catalog import TopicNames
from topics.errors import EventfleetError
from workers.adapters.kafka import KafkaConfig
from workers.cqrs.sync import SyncCommands
from workers.metrics import Metrics, create_metrics
from workers.ports import (
    CAPABILITIES,
    CapabilityMissing,
    LiveFeed,
    SnapshotStore,
    ViewStaging,
    ViewStore,
)
from workers.roles.append.appender import Appender
from workers.roles.append.book import AppenderConfig
from workers.roles.append.bridge import Bridge
from workers.roles.append.fates import DeadLetterFates
from workers.roles.append.forwarder import Forwarder, ReadBack
from workers.roles.append.given import AppendStores, Replies
from workers.roles.append.outbox import Outbox
from workers.roles.command.budget import WriteBudget
from workers.roles.command.commands import CommandDispatcher
from workers.roles.deadletter import DeadLetters
from workers.roles.ops.archive import TieredEvents
from workers.roles.outcomes import Outcomes
from workers.roles.personal import Shredder
from workers.roles.process.desk import ProcessDesk
from workers.roles.process.polls import Polls
from workers.roles.process.runner import ProcessRunner
from workers.roles.read.snapshotter import Snapshotter
from workers.roles.state import StateLoader
from workers.runtime.adapters import (
    Adapters,
    Markers,
    Marks,
    ProducerClient,
    Progress,
    Stores,
    WrittenLogClient,
    real_adapters,
)
from workers.runtime.announcing import AnnouncingProducer
from workers.runtime.answers import reply_of
from workers.runtime.command_side import CommandStores, command_side
from workers.runtime.connections import kafka_config
from workers.runtime.loading import load_domains, load_processes
from workers.runtime.processes import process_role
from workers.runtime.role_names import PM_ROLE, ROLES
from workers.runtime.settings import Settings
from workers.secrets import Secrets, read_secrets

log = logging.getLogger(__name__)
T = TypeVar("T")


def all_roles(settings: Settings) -> tuple[str, ...]:
    """What ``--role all`` (and ``eventfleet dev``) run: every pipeline role, and the pm role
    when process managers are enabled (``PM_ROLE``, ``workers.runtime.processes``)."""
    return (*ROLES, PM_ROLE) if settings.processes else ROLES


class RoleNotRunning(EventfleetError):
    """A process asked for a role it was not built to run (a wiring bug)."""


@dataclass
class _Parts:
    """What the roles of one process were built with; None: this process does not run it."""

    producer: ProducerClient | None = None
    dead_letters: dict[str, DeadLetters] = field(default_factory=dict)
    marks: Marks | None = None
    live: LiveFeed | None = None
    progress: Progress | None = None
    outbox: Outbox | None = None
    sync: SyncCommands | None = None
    commands: CommandDispatcher | None = None
    budget: WriteBudget | None = None
    outcomes: Outcomes | None = None
    appender: Appender | None = None
    snapshotter: Snapshotter | None = None
    bridge: Bridge | None = None
    forwarder: Forwarder | None = None
    written: WrittenLogClient | None = None
    runner: ProcessRunner | None = None
    polls: Polls | None = None
    desk: ProcessDesk | None = None


@dataclass
class Runtime:
    """Everything the roles of one process need, bound to one event loop.

    Only what ``roles`` need is built: a read-only command (``roles=()``) starts no Kafka
    producer and connects to no Redis; a process running only the appender builds no
    command service. Asking for a part this process did not build raises RoleNotRunning.
    """

    settings: Settings
    domains: Domains
    metrics: Metrics
    names: TopicNames
    roles: frozenset[str]
    kafka: KafkaConfig
    adapters: Adapters
    loader: StateLoader
    events: TieredEvents
    """Every event, hot or archived, read as one history (appends go to the hot store)."""
    shredder: Shredder
    secrets: Secrets = field(default_factory=Secrets)
    """What the process read at start; nothing reads a secret again."""
    processes: Processes = field(default_factory=Processes)
    """The enabled process managers (``EVENTFLEET_PROCESSES``), checked against the domains."""
    _parts: _Parts = field(default_factory=_Parts)

    @classmethod
    @asynccontextmanager
    async def running(
        cls, settings: Settings, *, roles: Collection[str], domains: Domains | None = None
    ) -> AsyncIterator[Runtime]:
        """A runtime of ``roles`` (none: the store only, no producer, no Redis) for one block,
        a command's or a rebuild's: stopped when it ends, however it ends."""
        runtime = await cls.start(settings, roles=roles, domains=domains)
        try:
            yield runtime
        finally:
            await runtime.stop()

    @classmethod
    async def start(
        cls,
        settings: Settings,
        *,
        roles: Collection[str] = ROLES,
        domains: Domains | None = None,
        metrics: Metrics | None = None,
        adapters: Adapters | None = None,
        secrets: Secrets | None = None,
        processes: Processes | None = None,
    ) -> Runtime:
        """Build the parts of ``roles`` on ``adapters`` (the real ones, from the settings, if None),
        with the ``secrets`` the process read at start (read here, once, if None)."""
        domains = domains or load_domains(settings.domains)
        if processes is None:
            processes = load_processes(settings.processes, domains)
        metrics = metrics or create_metrics()
        secrets = read_secrets(settings) if secrets is None else secrets
        kafka = kafka_config(settings, secrets)  # a bad TLS file stops us before connecting
        key = None if secrets.master_key is None else secrets.master_key.reveal()
        adapters = adapters or real_adapters(settings, metrics, kafka=kafka, master_key=key)
        stores = adapters.stores
        events = TieredEvents(stores.events, stores.archive)
        loader = StateLoader(
            events,
            stores.snapshots,
            metrics,
            tail_threshold=settings.snapshot_tail,
            query_interval_s=settings.snapshot_query_interval_ms / 1000,
            ladder=stores.ladder,
            ladder_step=settings.snapshot_ladder_step,
        )
        runtime = cls(
            settings=settings,
            domains=domains,
            metrics=metrics,
            names=TopicNames(settings.topic_prefix),
            roles=frozenset(roles),
            kafka=kafka,
            adapters=adapters,
            loader=loader,
            events=events,
            shredder=Shredder(
                stores.keys,
                enabled=settings.personal_data_encryption,
                cache_ttl_s=settings.key_cache_ttl_s,
            ),
            secrets=secrets,
            processes=processes,
        )
        missing = [c.name for c in CAPABILITIES if c.name not in events.capabilities]
        if missing:
            log.warning("the event store does without %s (docs/development.md)", ", ".join(missing))
        try:
            await stores.open()
            if runtime.roles:
                await runtime._build_roles()
        except BaseException:
            await runtime.stop()
            raise
        return runtime

    @property
    def stores(self) -> Stores:
        return self.adapters.stores

    @property
    def snapshots(self) -> SnapshotStore:
        return self.adapters.stores.snapshots

    def views(self, collection: str) -> ViewStore:
        """The view store of the projection kept in ``collection``."""
        return self.adapters.stores.views(collection)

    def staging(self, collection: str) -> ViewStaging:
        return self.adapters.stores.staging(collection)

    async def _build_roles(self) -> None:
        settings, metrics, names, parts = self.settings, self.metrics, self.names, self._parts
        producer: ProducerClient = self.adapters.stream.producer(
            client_id=f"{settings.group_id}-producer"
        )
        if self.roles & {"commands", "appender", PM_ROLE}:  # writers of events.stored announce
            feed = await self.live_feed()
            producer = AnnouncingProducer(producer, stored_topic=names.stored, feed=feed)
        parts.producer = producer
        await producer.start()
        parts.dead_letters = {
            role: DeadLetters(producer, topic=names.dlq, role=role, metrics=metrics)
            for role in sorted(self.roles)
        }
        if self.roles & {"commands", PM_ROLE}:  # process managers send through the door too
            await self._build_commands(producer)
        if "appender" in self.roles:
            parts.appender = await self._appender(producer, parts.dead_letters["appender"])
        if "snapshotter" in self.roles:
            parts.snapshotter = Snapshotter(
                loader=self.loader,
                domains=self.domains,
                metrics=metrics,
                concurrency=settings.snapshot_concurrency,
                dead_letters=parts.dead_letters["snapshotter"],
                stored_topic=names.stored,
            )
        if "bridge" in self.roles:
            parts.bridge = Bridge(
                bus=self.adapters.bus(),
                bus_name=settings.bridge_bus,
                domains=self.domains,
                metrics=metrics,
                dead_letters=parts.dead_letters["bridge"],
            )
        if "forwarder" in self.roles:
            parts.written = self.adapters.stream.written()
            parts.forwarder = Forwarder(
                producer=producer,
                domains=self.domains,
                names=names,
                metrics=metrics,
                dead_letters=parts.dead_letters["forwarder"],
                read_back=ReadBack(
                    parts.written, settings.forward_lookback_s * 1000, settle=producer.settled
                ),
            )
        if PM_ROLE in self.roles and self.processes:
            parts.runner, parts.polls = process_role(
                settings,
                self.processes,
                self.stores.processes,
                self.events,
                submit=self.commands.handle,
                dead_letters=parts.dead_letters[PM_ROLE],
                metrics=metrics,
                marks=(await self.marks()).marker,
            )

    async def _appender(self, producer: ProducerClient, dead_letters: DeadLetters) -> Appender:
        settings, names = self.settings, self.names
        marks = await self.marks()
        replies = Replies(producer, reply_of, marks.marker, marks.memory)
        stores = AppendStores(
            events=self.events,
            rejections=self.stores.rejections,
            loader=self.loader,
            parked=self.stores.parked,
            whole_in_hot=self.events.whole_in_hot,  # a new aggregate's head is not read
        )
        return Appender(
            stores=stores,
            replies=replies,
            dead_letters=dead_letters,
            domains=self.domains,
            metrics=self.metrics,
            config=AppenderConfig(
                stored_topic=names.stored,
                replies_topic=names.command_replies,
                max_event_bytes=settings.max_event_bytes,
                wait_s=settings.append_wait_ms / 1000,
                judge_access=settings.auth in ("jwt", "proxy"),
            ),
            fates=DeadLetterFates(
                store=self.events,
                rejections=self.stores.rejections,
                replies=replies,
                replies_topic=names.command_replies,
            ),
        )

    async def marks(self) -> Marks:
        """The marker and command memory, one connection per process; also in a process
        without the commands role (the auditor reads marks)."""
        if self._parts.marks is None:
            prefix = f"{self.settings.topic_prefix}{await self.stores.store_id()}:"
            self._parts.marks = self.adapters.marks(prefix)
        return self._parts.marks

    async def live_feed(self) -> LiveFeed:
        """The live feed, one per process: writers announce on it, subscriptions listen."""
        if self._parts.live is None:
            prefix = f"{self.settings.topic_prefix}{await self.stores.store_id()}:live:"
            self._parts.live = self.adapters.live(prefix)
        return self._parts.live

    async def _build_commands(self, producer: ProducerClient) -> None:
        stored_first = [d.name for d in self.domains if d.mode in (Mode.SYNC, Mode.STORAGE)]
        if stored_first and "pending" not in self.events.capabilities:
            raise CapabilityMissing(
                "pending", f"the commands role, for the sync and storage domains {stored_first}"
            )
        side = command_side(
            self.settings,
            self.domains,
            self.metrics,
            self.names,
            stores=CommandStores(self.events, self.stores.rejections, self.loader, self.shredder),
            stream=self.adapters.stream,
            marks=await self.marks(),
            producer=producer,
            feed=await self.live_feed(),
        )
        parts = self._parts
        parts.outbox, parts.sync, parts.outcomes = side.outbox, side.sync, side.outcomes
        parts.progress, parts.budget, parts.commands = side.progress, side.budget, side.commands

    def _built(self, part: T | None, name: str, role: str) -> T:
        if part is None:
            raise RoleNotRunning(
                f"this process was built for roles {sorted(self.roles) or 'none'}; "
                f"{name} belongs to the {role} role."
            )
        return part

    @property
    def producer(self) -> ProducerClient:
        return self._built(self._parts.producer, "producer", "any consuming")

    @property
    def dead_letters(self) -> dict[str, DeadLetters]:
        return self._built(self._parts.dead_letters or None, "dead_letters", "any consuming")

    @property
    def marker(self) -> Markers:
        return self._built(self._parts.marks, "marker", "commands").marker

    @property
    def outbox(self) -> Outbox:
        return self._built(self._parts.outbox, "outbox", "commands")

    @property
    def sync(self) -> SyncCommands:
        return self._built(self._parts.sync, "sync", "commands")

    @property
    def commands(self) -> CommandDispatcher:
        return self._built(self._parts.commands, "commands", "commands")

    @property
    def outcomes(self) -> Outcomes:
        return self._built(self._parts.outcomes, "outcomes", "commands")

    @property
    def appender(self) -> Appender:
        return self._built(self._parts.appender, "appender", "appender")

    @property
    def snapshotter(self) -> Snapshotter:
        return self._built(self._parts.snapshotter, "snapshotter", "snapshotter")

    @property
    def bridge(self) -> Bridge:
        return self._built(self._parts.bridge, "bridge", "bridge")

    @property
    def forwarder(self) -> Forwarder:
        return self._built(self._parts.forwarder, "forwarder", "forwarder")

    @property
    def runner(self) -> ProcessRunner:
        """The process managers' runner (the pm role, with process managers enabled)."""
        return self._built(self._parts.runner, "runner", PM_ROLE)

    @property
    def polls(self) -> Polls:
        """The pm role's polls: deadlines, retries, unsent commands."""
        return self._built(self._parts.polls, "polls", PM_ROLE)

    @property
    def process_desk(self) -> ProcessDesk:
        """What operators ask of the process managers: in every process (the API's routes)."""
        if self._parts.desk is None:
            self._parts.desk = ProcessDesk(
                processes=self.processes, instances=self.stores.processes, log=self.stores.actions
            )
        return self._parts.desk

    async def stop(self) -> None:
        """Drain background work, then close every client this process opened."""
        parts = self._parts
        if parts.snapshotter is not None:
            await parts.snapshotter.drain()
        await self.loader.drain()
        if parts.sync is not None:
            await parts.sync.drain()
        if parts.budget is not None:
            await parts.budget.close()
        if parts.marks is not None:
            await parts.marks.close()
        if parts.live is not None:
            await parts.live.close()
        if parts.bridge is not None:
            await parts.bridge.bus.close()
        if parts.progress is not None:
            await parts.progress.stop()
        if parts.written is not None:
            await parts.written.stop()
        if parts.producer is not None:
            await parts.producer.stop()
        await self.stores.close()

    async def ping_store(self) -> None:
        """One store round trip (the health monitor bounds it with the store's timeout)."""
        await self.stores.ping()
