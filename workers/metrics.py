"""Every Prometheus metric of eventfleet, declared in one place from an injected registry.

Labels are bounded: aggregate type, event type, outcome, role, topic, partition, reason
(a fixed vocabulary) -- never an aggregate id; a principal only where a process caps how many
it names (``PRINCIPAL_LABELS``, the rest as ``other``).
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TypedDict

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)
REPLAY_BUCKETS = (0, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 5000, 10000)
REBALANCE_BUCKETS_S = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
SERVICES = ("store", "marker", "stream")
"""The dependencies a role may wait for: the ``service`` label's whole vocabulary."""


@dataclass(frozen=True, slots=True)
class Metrics:
    """The fleet's metrics, bound to one registry (one per process, or one per test)."""

    registry: CollectorRegistry
    requests: Counter
    command_latency: Histogram
    marker_latency: Histogram
    events_appended: Counter
    append_batch_size: Histogram
    append_latency: Histogram
    duplicates_dropped: Counter
    append_waits: Counter
    append_wait: Histogram
    store_rejections: Counter
    aggregates_parked: Counter
    audited: Counter
    audit_findings: Counter
    dead_lettered: Counter
    snapshots_written: Counter
    rule_state_misses: Counter
    replay_length: Histogram
    replay_duration: Histogram
    events_forwarded: Counter
    forward_copies_skipped: Counter
    forward_copies_unsure: Counter
    events_published: Counter
    events_bridged: Counter
    projection_events: Counter
    projection_lag: Gauge
    consumer_lag: Gauge
    dependency_retries: Counter
    offset_gaps: Counter
    role_ready: Gauge
    storage_changes: Counter
    dependency_up: Gauge
    rebalances: Counter
    rebalance_duration: Histogram
    commit_latency: Histogram
    commit_failures: Counter
    group_lag: Gauge
    lag_read_time: Gauge
    auth_refusals: Counter
    unknowns_resolved: Counter
    group_rejoins: Counter
    assigned_partitions: Gauge
    role_idle: Gauge
    write_budget_refusals: Counter
    write_budget_local: Counter


PRINCIPAL_LABELS = 100
"""Principals one process names in a label; those after them are counted as ``other``."""


def create_metrics(registry: CollectorRegistry | None = None) -> Metrics:
    registry = registry if registry is not None else CollectorRegistry()
    return Metrics(
        registry=registry,
        requests=Counter(
            "eventfleet_requests_total",
            "Append requests by aggregate type, event type and outcome "
            "(accepted, duplicate, rejected_<reason>, error_<service>).",
            ["aggregate_type", "event_type", "outcome"],
            registry=registry,
        ),
        command_latency=Histogram(
            "eventfleet_command_latency_seconds",
            "Time from request to answer on the command path.",
            ["aggregate_type", "mode"],
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        ),
        marker_latency=Histogram(
            "eventfleet_marker_latency_seconds",
            "Time of one marker check-and-set round trip to Redis.",
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        ),
        events_appended=Counter(
            "eventfleet_events_appended_total",
            "Events newly written to the event store.",
            ["aggregate_type"],
            registry=registry,
        ),
        append_batch_size=Histogram(
            "eventfleet_append_batch_size",
            "Events per appender batch.",
            buckets=BATCH_BUCKETS,
            registry=registry,
        ),
        append_latency=Histogram(
            "eventfleet_append_latency_seconds",
            "Time to store one appender batch and publish it to events.stored.",
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        ),
        duplicates_dropped=Counter(
            "eventfleet_duplicates_dropped_total",
            "Redelivered events found already stored and not written again.",
            registry=registry,
        ),
        append_waits=Counter(
            "eventfleet_append_waits_total",
            "Events that waited for the event they were validated after, by outcome "
            "(arrived: stored in validated order; expired: judged without it).",
            ["outcome"],
            registry=registry,
        ),
        append_wait=Histogram(
            "eventfleet_append_wait_seconds",
            "How long an event waited for its predecessor before it was judged.",
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        ),
        store_rejections=Counter(
            "eventfleet_store_rejections_total",
            "Accepted events the store refused (the store is the judge), by aggregate type "
            "and reason (transition_rejected_at_store, forbidden_at_store, invalid_data, "
            "wrong_expected_version).",
            ["aggregate_type", "reason"],
            registry=registry,
        ),
        aggregates_parked=Counter(
            "eventfleet_aggregates_parked_total",
            "Aggregates a role stopped working on because their state cannot be folded or "
            "stored (the rest of the partition moves on), by role and reason.",
            ["role", "reason"],
            registry=registry,
        ),
        audited=Counter(
            "eventfleet_audited_aggregates_total",
            "Aggregates the in-fleet auditor replayed and compared with their snapshot and views.",
            registry=registry,
        ),
        audit_findings=Counter(
            "eventfleet_audit_findings_total",
            "Disagreements the auditor found (invalid_history, gap, snapshot_mismatch, ...).",
            ["kind"],
            registry=registry,
        ),
        dead_lettered=Counter(
            "eventfleet_dead_lettered_total",
            "Events sent to the dead-letter topic, by role and reason.",
            ["role", "reason"],
            registry=registry,
        ),
        snapshots_written=Counter(
            "eventfleet_snapshots_written_total",
            "Snapshots stored, by aggregate type and trigger (rule, query or validation).",
            ["aggregate_type", "trigger"],
            registry=registry,
        ),
        rule_state_misses=Counter(
            "eventfleet_snapshot_rule_misses_total",
            "Aggregates whose snapshot-rule state the snapshotter's table did not hold, so their "
            "snapshot document was read (once each; then the table has them).",
            registry=registry,
        ),
        replay_length=Histogram(
            "eventfleet_replay_length_events",
            "Events folded by one replay.",
            ["aggregate_type"],
            buckets=REPLAY_BUCKETS,
            registry=registry,
        ),
        replay_duration=Histogram(
            "eventfleet_replay_duration_seconds",
            "Time to load and fold one replay.",
            ["aggregate_type"],
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        ),
        events_forwarded=Counter(
            "eventfleet_events_forwarded_total",
            "Stored events produced to downstream topics.",
            ["topic"],
            registry=registry,
        ),
        forward_copies_skipped=Counter(
            "eventfleet_forward_copies_skipped_total",
            "Copies the forwarder did not produce: the downstream topic holds them already.",
            ["topic"],
            registry=registry,
        ),
        forward_copies_unsure=Counter(
            "eventfleet_forward_copies_unsure_total",
            "Copies in a produce that failed or timed out: each may still land after the topic "
            "was read back and be sent again, so at most this many appear downstream twice.",
            ["topic"],
            registry=registry,
        ),
        events_published=Counter(
            "eventfleet_events_published_total",
            "Stored events produced to events.stored, by mode (async, sync, storage).",
            ["mode"],
            registry=registry,
        ),
        events_bridged=Counter(
            "eventfleet_events_bridged_total",
            "Events the bridge role published on an event bus (stored ones and those their "
            "domains derive), by bus (redis, nats).",
            ["bus"],
            registry=registry,
        ),
        projection_events=Counter(
            "eventfleet_projection_events_total",
            "Events applied to a projection's views (outcome: applied or skipped).",
            ["projection", "outcome"],
            registry=registry,
        ),
        projection_lag=Gauge(
            "eventfleet_projection_lag_events",
            "Events on events.stored not yet applied by the projection, per partition.",
            ["projection", "partition"],
            registry=registry,
        ),
        consumer_lag=Gauge(
            "eventfleet_consumer_lag_events",
            "Events behind the high-water mark per role, topic and partition.",
            ["role", "topic", "partition"],
            registry=registry,
        ),
        dependency_retries=Counter(
            "eventfleet_dependency_retries_total",
            "Pauses of a consumer role because a dependency was unavailable.",
            ["role", "service"],
            registry=registry,
        ),
        offset_gaps=Counter(
            "eventfleet_offset_gaps_total",
            "Offsets a consumer role never received before a later one (records dropped between "
            "the broker and the agent, e.g. around a rebalance), by how they were closed: "
            "redelivered (sought back) or skipped (they held no record).",
            ["role", "outcome"],
            registry=registry,
        ),
        role_ready=Gauge(
            "eventfleet_role_ready",
            "1 when the process can take the work it owns: started, not draining and, for "
            "a consumer role, given its share of partitions by its group (none when idle: "
            "eventfleet_role_idle); dependency health is eventfleet_dependency_up.",
            ["role"],
            registry=registry,
        ),
        storage_changes=Counter(
            "eventfleet_storage_changes_total",
            "EventSourcedStorage changes by collection and operation.",
            ["collection", "operation"],
            registry=registry,
        ),
        **_operations_metrics(registry),
    )


class _OperationsMetrics(TypedDict):
    """The operations part of ``Metrics``, typed so ``Metrics(**...)`` is checked field by field."""

    dependency_up: Gauge
    rebalances: Counter
    rebalance_duration: Histogram
    commit_latency: Histogram
    commit_failures: Counter
    group_lag: Gauge
    lag_read_time: Gauge
    auth_refusals: Counter
    unknowns_resolved: Counter
    group_rejoins: Counter
    assigned_partitions: Gauge
    role_idle: Gauge
    write_budget_refusals: Counter
    write_budget_local: Counter


def _operations_metrics(registry: CollectorRegistry) -> _OperationsMetrics:
    """Dependency health, consumer group life (rebalances, commits) and broker-side lag."""
    return _OperationsMetrics(
        dependency_up=Gauge(
            "eventfleet_dependency_up",
            "1 when the dependency answered its last health check within its timeout.",
            ["role", "service"],
            registry=registry,
        ),
        rebalances=Counter(
            "eventfleet_rebalances_total",
            "Consumer group rebalances this process took part in.",
            ["role"],
            registry=registry,
        ),
        rebalance_duration=Histogram(
            "eventfleet_rebalance_duration_seconds",
            "Time from the start of a rebalance to the end of partition assignment.",
            ["role"],
            buckets=REBALANCE_BUCKETS_S,
            registry=registry,
        ),
        commit_latency=Histogram(
            "eventfleet_commit_latency_seconds",
            "Time of one consumer offset commit round trip to Kafka.",
            ["role"],
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        ),
        commit_failures=Counter(
            "eventfleet_commit_failures_total",
            "Offset commits that failed (the events are redelivered).",
            ["role"],
            registry=registry,
        ),
        group_lag=Gauge(
            "eventfleet_group_lag_events",
            "Events behind the high-water mark per consumer group, topic and partition, read "
            "from the brokers by the lag role (it survives the pods it measures).",
            ["group", "topic", "partition"],
            registry=registry,
        ),
        lag_read_time=Gauge(
            "eventfleet_lag_read_timestamp_seconds",
            "Unix time of the lag role's last complete read of group offsets.",
            registry=registry,
        ),
        auth_refusals=Counter(
            "eventfleet_auth_refusals_total",
            "HTTP requests refused at the door: 401 unauthenticated or 403 forbidden, by reason "
            "(a fixed vocabulary: expired, unknown_key, role_required, csrf, ...).",
            ["status", "reason"],
            registry=registry,
        ),
        unknowns_resolved=Counter(
            "eventfleet_unknowns_resolved_total",
            "Outcomes recorded unknown that the events topic resolved (accepted: a copy landed; "
            "not_stored: none did, nor can any more).",
            ["result"],
            registry=registry,
        ),
        group_rejoins=Counter(
            "eventfleet_group_rejoins_total",
            "Consumer group joins that did not complete within the bound and were started "
            "again (or gave up: the process exits for a restart), by role and action.",
            ["role", "action"],
            registry=registry,
        ),
        assigned_partitions=Gauge(
            "eventfleet_assigned_partitions",
            "Partitions of a topic this process's consumer holds now (its share of the group: "
            "floor or ceil of partitions over members; 0 during a rebalance).",
            ["role", "topic"],
            registry=registry,
        ),
        role_idle=Gauge(
            "eventfleet_role_idle",
            "1 while the consumer group gave this process no partition (more members than "
            "partitions): it is ready and takes a share at a later rebalance.",
            ["role"],
            registry=registry,
        ),
        write_budget_refusals=Counter(
            "eventfleet_write_budget_refusals_total",
            "Writes refused (429 too_many_writes) because their principal's budget was spent, "
            "by principal: the first 100 a process refuses by name, the rest as other.",
            ["principal"],
            registry=registry,
        ),
        write_budget_local=Counter(
            "eventfleet_write_budget_local_total",
            "Sync writes a process judged by its own bucket, Redis not answering (fail open "
            "to a per-process budget), by decision (taken, refused).",
            ["decision"],
            registry=registry,
        ),
    )


def prime(
    metrics: Metrics,
    *,
    role: str,
    roles: Iterable[str],
    dead_letter_reasons: Iterable[str],
    aggregate_types: Iterable[str],
    event_types: Iterable[tuple[str, str]] = (),
    projections: Iterable[str] = (),
    downstream_topics: Iterable[str] = (),
) -> None:
    """Create every labelled counter at 0 for its known labels, before the first increment.

    A series that appears with its first increment hides that increment from ``rate()`` and
    ``increase()``: the first dead letter on a fresh pod would never fire its alert.
    """
    roles = list(roles)
    aggregate_types = list(aggregate_types)
    for name in roles:
        for reason in dead_letter_reasons:
            metrics.dead_lettered.labels(name, reason)
        for service in SERVICES:
            metrics.dependency_retries.labels(name, service)
        for outcome in ("redelivered", "skipped"):
            metrics.offset_gaps.labels(name, outcome)
    for service in SERVICES:
        metrics.dependency_up.labels(role, service)
    metrics.rebalances.labels(role)
    metrics.commit_failures.labels(role)
    if roles:  # a consumer: idle or not from the start
        metrics.role_idle.labels(role)
    for action in ("adopt_leader", "waiting", "give_up"):
        metrics.group_rejoins.labels(role, action)
    for result in ("accepted", "not_stored"):
        metrics.unknowns_resolved.labels(result)
    for aggregate_type in aggregate_types:
        metrics.events_appended.labels(aggregate_type)
        for trigger in ("rule", "query"):
            metrics.snapshots_written.labels(aggregate_type, trigger)
    for aggregate_type, event_type in event_types:
        for outcome in ("accepted", *(f"error_{service}" for service in SERVICES)):
            metrics.requests.labels(aggregate_type, event_type, outcome)
    for mode in ("async", "sync", "storage"):
        metrics.events_published.labels(mode)
    for projection in projections:
        for outcome in ("applied", "skipped"):
            metrics.projection_events.labels(projection, outcome)
    for topic in downstream_topics:
        metrics.events_forwarded.labels(topic)
        metrics.forward_copies_skipped.labels(topic)
        metrics.forward_copies_unsure.labels(topic)


class LoopCounter:
    """A counter by one label, counted by the event loop alone: an ``inc`` is an addition, no
    lock (prometheus_client's takes one per call, several microseconds, on a path that counts
    every event delivered to every live subscriber). Collected as a prometheus_client
    ``Counter`` is (``<name>_total`` and ``<name>_created`` per label value)."""

    def __init__(self, name: str, documentation: str, label: str, registry: CollectorRegistry):
        self._name = name.removesuffix("_total")
        self._documentation = documentation
        self._label = label
        self._children: dict[str, LoopCount] = {}
        registry.register(self)

    def labels(self, value: str) -> LoopCount:
        child = self._children.get(value)
        if child is None:
            child = self._children[value] = LoopCount()
        return child

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self._name, self._documentation, labels=[self._label])
        for value, child in tuple(self._children.items()):
            family.add_metric([value], child.value, created=child.created)
        yield family

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily(self._name, self._documentation, labels=[self._label])


class LoopCount:
    """One label value of a ``LoopCounter``."""

    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1) -> None:
        self.value += amount


class LoopHistogram:
    """A histogram observed by the event loop alone: an ``observe`` is a bisection and two
    additions, no lock. Collected as a prometheus_client ``Histogram`` without labels is."""

    def __init__(
        self, name: str, documentation: str, buckets: Iterable[float], registry: CollectorRegistry
    ):
        self._name = name
        self._documentation = documentation
        self._bounds = sorted(buckets)
        self._counts = [0] * (len(self._bounds) + 1)  # the last one: above every bound
        self._sum = 0.0
        self._created = time.time()
        registry.register(self)

    def observe(self, amount: float, times: int = 1) -> None:
        """``amount`` observed ``times`` times (the deliveries of one event in one turn)."""
        self._counts[bisect_left(self._bounds, amount)] += times
        self._sum += amount * times

    def collect(self) -> Iterator[Metric]:
        counts, total, buckets = tuple(self._counts), 0, []
        for bound, count in zip([*self._bounds, float("inf")], counts, strict=True):
            total += count
            buckets.append((floatToGoString(bound), float(total)))  # type: ignore[no-untyped-call]  # prometheus_client's floatToGoString has no annotations
        family = HistogramMetricFamily(self._name, self._documentation, buckets=buckets,
                                       sum_value=self._sum)  # fmt: skip
        yield family
        created = Metric(f"{self._name}_created", self._documentation, "gauge")
        created.add_sample(f"{self._name}_created", {}, self._created)
        yield created

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily(self._name, self._documentation)


@dataclass(frozen=True, slots=True)
class LiveMetrics:
    """The live subscriptions' metrics (``kind``: aggregate, view, room, type, global; ``via``:
    sse, websocket).

    The two counted per delivered event are loop metrics (``LoopCounter``, ``LoopHistogram``):
    only the event loop's thread may touch them."""

    connections: Gauge
    events_sent: LoopCounter
    gaps_filled: Counter
    slow_closes: Counter
    refused: Counter
    latency: LoopHistogram


def create_live_metrics(registry: CollectorRegistry) -> LiveMetrics:
    """Declared apart from ``Metrics`` so that only processes that serve subscribers carry them."""
    return LiveMetrics(
        connections=Gauge(
            "eventfleet_live_connections",
            "Open live subscriptions by kind and transport.",
            ["kind", "via"],
            registry=registry,
        ),
        events_sent=LoopCounter(
            "eventfleet_live_events_sent_total",
            "Events written to live subscribers, by kind.",
            "kind",
            registry,
        ),
        gaps_filled=Counter(
            "eventfleet_live_gaps_filled_total",
            "Times a live subscription read missed events from the store (a lost announcement, "
            "a feed reconnect), by kind.",
            ["kind"],
            registry=registry,
        ),
        slow_closes=Counter(
            "eventfleet_live_slow_closes_total",
            "Live subscriptions closed because the client read slower than events came, by kind.",
            ["kind"],
            registry=registry,
        ),
        refused=Counter(
            "eventfleet_live_refused_total",
            "Live subscriptions refused by limit (process, principal).",
            ["limit"],
            registry=registry,
        ),
        latency=LoopHistogram(
            "eventfleet_live_delivery_seconds",
            "From an event being stored (its occurred_at) to being written to a live subscriber.",
            LATENCY_BUCKETS_S,
            registry,
        ),
    )


@dataclass(frozen=True, slots=True)
class RywMetrics:
    """Read your writes: the reads waiting for their writes, those refused, the store checks."""

    waiters: Gauge
    refused: Counter
    checks: Counter


def create_ryw_metrics(registry: CollectorRegistry) -> RywMetrics:
    """Declared apart from ``Metrics``: only processes that serve reads carry them."""
    return RywMetrics(
        waiters=Gauge(
            "eventfleet_ryw_waiters",
            "Reads waiting now for their writes (min_version, command_id).",
            registry=registry,
        ),
        refused=Counter(
            "eventfleet_ryw_refused_total",
            "Reads refused a wait by limit (process, principal).",
            ["limit"],
            registry=registry,
        ),
        checks=Counter(
            "eventfleet_ryw_store_checks_total",
            "Store reads made for waiting reads, by read (heads, find, rejections, view); one "
            "read covers every waiter of a round.",
            ["read"],
            registry=registry,
        ),
    )


DEADLINE_DELAY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)


@dataclass(frozen=True, slots=True)
class ProcessMetrics:
    """The process managers' metrics (``process``: a declared manager's name)."""

    events: Counter
    commands: Counter
    deadlines: Counter
    deadline_delay: Histogram
    stuck: Counter


PROCESS_EVENT_OUTCOMES = ("applied", "skipped", "unmatched", "held", "dropped", "stuck", "unkeyed")
PROCESS_COMMAND_OUTCOMES = ("accepted", "duplicate", "refused", "pending")
PROCESS_DEADLINE_OUTCOMES = ("set", "cancelled", "fired", "deferred")
PROCESS_STUCK_REASONS = (
    "reaction_failed",
    "reaction_invalid",
    "command_refused",
    "state_unstorable",
)


def prime_processes(metrics: ProcessMetrics, processes: Iterable[str]) -> None:
    """Every process manager's series at 0 before its first increment (see ``prime``)."""
    for name in processes:
        for outcome in PROCESS_EVENT_OUTCOMES:
            metrics.events.labels(name, outcome)
        for outcome in PROCESS_COMMAND_OUTCOMES:
            metrics.commands.labels(name, outcome)
        for outcome in PROCESS_DEADLINE_OUTCOMES:
            metrics.deadlines.labels(name, outcome)
        for reason in PROCESS_STUCK_REASONS:
            metrics.stuck.labels(name, reason)
        metrics.deadline_delay.labels(name)


def create_process_metrics(registry: CollectorRegistry) -> ProcessMetrics:
    """Declared apart from ``Metrics``: only processes that run the pm role carry them."""
    return ProcessMetrics(
        events=Counter(
            "eventfleet_process_events_total",
            "Stored events a process manager took, by outcome (applied, skipped: seen already, "
            "unmatched: no instance to advance, held: its instance is stuck, dropped, stuck).",
            ["process", "outcome"],
            registry=registry,
        ),
        commands=Counter(
            "eventfleet_process_commands_total",
            "Commands process managers sent, by the door's answer (accepted, duplicate: sent "
            "before, refused: the instance is stuck, pending: to be sent again).",
            ["process", "outcome"],
            registry=registry,
        ),
        deadlines=Counter(
            "eventfleet_process_deadlines_total",
            "Deadlines set, cancelled, fired, and deferred (the instance had stored events it "
            "had not reacted to yet).",
            ["process", "outcome"],
            registry=registry,
        ),
        deadline_delay=Histogram(
            "eventfleet_process_deadline_delay_seconds",
            "From a deadline's due time to its firing (the stated bound: the poll interval plus "
            "the role's lag on the instance's events).",
            ["process"],
            buckets=DEADLINE_DELAY_BUCKETS_S,
            registry=registry,
        ),
        stuck=Counter(
            "eventfleet_process_stuck_total",
            "Instances that stopped (reaction_failed, reaction_invalid, command_refused, "
            "state_unstorable), dead-lettered until an operator retries them.",
            ["process", "reason"],
            registry=registry,
        ),
    )
