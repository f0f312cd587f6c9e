"""Every Prometheus metric of eventfleet, declared in one place from an injected registry.

Each metric is one declaration, a field of a frozen dataclass (``Metrics``, and the parts only
some processes carry: ``LiveMetrics``, ``RywMetrics``, ``ProcessMetrics``): its name, help,
labels and buckets (``workers.metric_kinds``). ``create`` makes every declared field against one
registry, so adding a metric is adding its field.

Labels are bounded: aggregate type, event type, outcome, role, topic, partition, reason
(a fixed vocabulary) -- never an aggregate id; a principal only where a process caps how many
it names (``PRINCIPAL_LABELS``, the rest as ``other``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from workers.metric_kinds import (
    LoopCounter,
    LoopHistogram,
    counter,
    create,
    gauge,
    histogram,
    loop_counter,
    loop_histogram,
)

LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)
REPLAY_BUCKETS = (0, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 5000, 10000)
REBALANCE_BUCKETS_S = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
DEADLINE_DELAY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)
SERVICES = ("store", "marker", "stream")
"""The dependencies a role may wait for: the ``service`` label's whole vocabulary."""

REFUSAL_DECISIONS = ("head", "announced", "settled", "remarked", "not_yet")
"""What decides a marker's refusal (``eventfleet_refusal_checks_total``'s ``decided``)."""

PRINCIPAL_LABELS = 100
"""Principals one process names in a label; those after them are counted as ``other``."""


@dataclass(frozen=True, slots=True)
class Metrics:
    """The fleet's metrics, bound to one registry (one per process, or one per test)."""

    registry: CollectorRegistry
    requests: Counter = counter(
        "eventfleet_requests_total",
        "Append requests by aggregate type, event type and outcome "
        "(accepted, duplicate, rejected_<reason>, error_<service>).",
        labels=("aggregate_type", "event_type", "outcome"),
    )
    command_latency: Histogram = histogram(
        "eventfleet_command_latency_seconds",
        "Time from request to answer on the command path.",
        labels=("aggregate_type", "mode"),
        buckets=LATENCY_BUCKETS_S,
    )
    marker_latency: Histogram = histogram(
        "eventfleet_marker_latency_seconds",
        "Time of one marker check-and-set round trip to Redis.",
        buckets=LATENCY_BUCKETS_S,
    )
    events_appended: Counter = counter(
        "eventfleet_events_appended_total",
        "Events newly written to the event store.",
        labels=("aggregate_type",),
    )
    append_batch_size: Histogram = histogram(
        "eventfleet_append_batch_size",
        "Events per appender batch.",
        buckets=BATCH_BUCKETS,
    )
    append_latency: Histogram = histogram(
        "eventfleet_append_latency_seconds",
        "Time to store one appender batch and publish it to events.stored.",
        buckets=LATENCY_BUCKETS_S,
    )
    duplicates_dropped: Counter = counter(
        "eventfleet_duplicates_dropped_total",
        "Redelivered events found already stored and not written again.",
    )
    append_waits: Counter = counter(
        "eventfleet_append_waits_total",
        "Events that waited for the event they were validated after, by outcome "
        "(arrived: stored in validated order; expired: judged without it).",
        labels=("outcome",),
    )
    append_wait: Histogram = histogram(
        "eventfleet_append_wait_seconds",
        "How long an event waited for its predecessor before it was judged.",
        buckets=LATENCY_BUCKETS_S,
    )
    store_rejections: Counter = counter(
        "eventfleet_store_rejections_total",
        "Accepted events the store refused (the store is the judge), by aggregate type "
        "and reason (transition_rejected_at_store, forbidden_at_store, invalid_data, "
        "wrong_expected_version).",
        labels=("aggregate_type", "reason"),
    )
    aggregates_parked: Counter = counter(
        "eventfleet_aggregates_parked_total",
        "Aggregates a role stopped working on because their state cannot be folded or "
        "stored (the rest of the partition moves on), by role and reason.",
        labels=("role", "reason"),
    )
    audited: Counter = counter(
        "eventfleet_audited_aggregates_total",
        "Aggregates the in-fleet auditor replayed and compared with their snapshot and views.",
    )
    audit_findings: Counter = counter(
        "eventfleet_audit_findings_total",
        "Disagreements the auditor found (invalid_history, gap, snapshot_mismatch, ...).",
        labels=("kind",),
    )
    dead_lettered: Counter = counter(
        "eventfleet_dead_lettered_total",
        "Events sent to the dead-letter topic, by role and reason.",
        labels=("role", "reason"),
    )
    snapshots_written: Counter = counter(
        "eventfleet_snapshots_written_total",
        "Snapshots stored, by aggregate type and trigger (rule, query or validation).",
        labels=("aggregate_type", "trigger"),
    )
    rule_state_misses: Counter = counter(
        "eventfleet_snapshot_rule_misses_total",
        "Aggregates whose snapshot-rule state the snapshotter's table did not hold, so their "
        "snapshot document was read (once each; then the table has them).",
    )
    replay_length: Histogram = histogram(
        "eventfleet_replay_length_events",
        "Events folded by one replay.",
        labels=("aggregate_type",),
        buckets=REPLAY_BUCKETS,
    )
    replay_duration: Histogram = histogram(
        "eventfleet_replay_duration_seconds",
        "Time to load and fold one replay.",
        labels=("aggregate_type",),
        buckets=LATENCY_BUCKETS_S,
    )
    events_forwarded: Counter = counter(
        "eventfleet_events_forwarded_total",
        "Stored events produced to downstream topics.",
        labels=("topic",),
    )
    forward_copies_skipped: Counter = counter(
        "eventfleet_forward_copies_skipped_total",
        "Copies the forwarder did not produce: the downstream topic holds them already.",
        labels=("topic",),
    )
    forward_copies_unsure: Counter = counter(
        "eventfleet_forward_copies_unsure_total",
        "Copies in a produce that failed or timed out: each may still land after the topic "
        "was read back and be sent again, so at most this many appear downstream twice.",
        labels=("topic",),
    )
    events_published: Counter = counter(
        "eventfleet_events_published_total",
        "Stored events produced to events.stored, by mode (async, sync, storage).",
        labels=("mode",),
    )
    events_bridged: Counter = counter(
        "eventfleet_events_bridged_total",
        "Events the bridge role published on an event bus (stored ones and those their "
        "domains derive), by bus (redis, nats).",
        labels=("bus",),
    )
    projection_events: Counter = counter(
        "eventfleet_projection_events_total",
        "Events applied to a projection's views (outcome: applied or skipped).",
        labels=("projection", "outcome"),
    )
    projection_lag: Gauge = gauge(
        "eventfleet_projection_lag_events",
        "Events on events.stored not yet applied by the projection, per partition.",
        labels=("projection", "partition"),
    )
    consumer_lag: Gauge = gauge(
        "eventfleet_consumer_lag_events",
        "Events behind the high-water mark per role, topic and partition.",
        labels=("role", "topic", "partition"),
    )
    dependency_retries: Counter = counter(
        "eventfleet_dependency_retries_total",
        "Pauses of a consumer role because a dependency was unavailable.",
        labels=("role", "service"),
    )
    offset_gaps: Counter = counter(
        "eventfleet_offset_gaps_total",
        "Offsets a consumer role never received before a later one (records dropped between "
        "the broker and the agent, e.g. around a rebalance), by how they were closed: "
        "redelivered (sought back) or skipped (they held no record).",
        labels=("role", "outcome"),
    )
    role_ready: Gauge = gauge(
        "eventfleet_role_ready",
        "1 when the process can take the work it owns: started, not draining and, for "
        "a consumer role, given its share of partitions by its group (none when idle: "
        "eventfleet_role_idle); dependency health is eventfleet_dependency_up.",
        labels=("role",),
    )
    storage_changes: Counter = counter(
        "eventfleet_storage_changes_total",
        "EventSourcedStorage changes by collection and operation.",
        labels=("collection", "operation"),
    )
    # Dependency health, consumer group life (rebalances, commits) and broker-side lag.
    dependency_up: Gauge = gauge(
        "eventfleet_dependency_up",
        "1 when the dependency answered its last health check within its timeout.",
        labels=("role", "service"),
    )
    rebalances: Counter = counter(
        "eventfleet_rebalances_total",
        "Consumer group rebalances this process took part in.",
        labels=("role",),
    )
    rebalance_duration: Histogram = histogram(
        "eventfleet_rebalance_duration_seconds",
        "Time from the start of a rebalance to the end of partition assignment.",
        labels=("role",),
        buckets=REBALANCE_BUCKETS_S,
    )
    commit_latency: Histogram = histogram(
        "eventfleet_commit_latency_seconds",
        "Time of one consumer offset commit round trip to Kafka.",
        labels=("role",),
        buckets=LATENCY_BUCKETS_S,
    )
    commit_failures: Counter = counter(
        "eventfleet_commit_failures_total",
        "Offset commits that failed (the events are redelivered).",
        labels=("role",),
    )
    group_lag: Gauge = gauge(
        "eventfleet_group_lag_events",
        "Events behind the high-water mark per consumer group, topic and partition, read "
        "from the brokers by the lag role (it survives the pods it measures).",
        labels=("group", "topic", "partition"),
    )
    lag_read_time: Gauge = gauge(
        "eventfleet_lag_read_timestamp_seconds",
        "Unix time of the lag role's last complete read of group offsets.",
    )
    auth_refusals: Counter = counter(
        "eventfleet_auth_refusals_total",
        "HTTP requests refused at the door: 401 unauthenticated or 403 forbidden, by reason "
        "(a fixed vocabulary: expired, unknown_key, role_required, csrf, ...).",
        labels=("status", "reason"),
    )
    unknowns_resolved: Counter = counter(
        "eventfleet_unknowns_resolved_total",
        "Outcomes recorded unknown that the events topic resolved (accepted: a copy landed; "
        "not_stored: none did, nor can any more).",
        labels=("result",),
    )
    group_rejoins: Counter = counter(
        "eventfleet_group_rejoins_total",
        "Consumer group joins that did not complete within the bound and were started "
        "again (or gave up: the process exits for a restart), by role and action.",
        labels=("role", "action"),
    )
    assigned_partitions: Gauge = gauge(
        "eventfleet_assigned_partitions",
        "Partitions of a topic this process's consumer holds now (its share of the group: "
        "floor or ceil of partitions over members; 0 during a rebalance).",
        labels=("role", "topic"),
    )
    role_idle: Gauge = gauge(
        "eventfleet_role_idle",
        "1 while the consumer group gave this process no partition (more members than "
        "partitions): it is ready and takes a share at a later rebalance.",
        labels=("role",),
    )
    refusal_checks: Counter = counter(
        "eventfleet_refusal_checks_total",
        "Marker refusals checked against the store, by what decided them: head (the mark named "
        "the stored head), announced (by the live feed), settled (the appender caught up), "
        "remarked (accepted after all), not_yet (503 store_catching_up).",
        labels=("decided",),
    )
    write_budget_refusals: Counter = counter(
        "eventfleet_write_budget_refusals_total",
        "Writes refused (429 too_many_writes) because their principal's budget was spent, "
        "by principal: the first 100 a process refuses by name, the rest as other.",
        labels=("principal",),
    )
    write_budget_local: Counter = counter(
        "eventfleet_write_budget_local_total",
        "Sync writes a process judged by its own bucket, Redis not answering (fail open "
        "to a per-process budget), by decision (taken, refused).",
        labels=("decision",),
    )


def create_metrics(registry: CollectorRegistry | None = None) -> Metrics:
    """Every process's metrics, in ``registry`` (a fresh one by default)."""
    return create(Metrics, registry if registry is not None else CollectorRegistry())


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
    event_types = list(event_types)
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
    if event_types:  # the commands role, which checks refusals
        for decided in REFUSAL_DECISIONS:
            metrics.refusal_checks.labels(decided)
    for mode in ("async", "sync", "storage"):
        metrics.events_published.labels(mode)
    for projection in projections:
        for outcome in ("applied", "skipped"):
            metrics.projection_events.labels(projection, outcome)
    for topic in downstream_topics:
        metrics.events_forwarded.labels(topic)
        metrics.forward_copies_skipped.labels(topic)
        metrics.forward_copies_unsure.labels(topic)


@dataclass(frozen=True, slots=True)
class LiveMetrics:
    """The live subscriptions' metrics (``kind``: aggregate, view, room, type, global; ``via``:
    sse, websocket).

    The two counted per delivered event are loop metrics (``LoopCounter``, ``LoopHistogram``):
    only the event loop's thread may touch them."""

    connections: Gauge = gauge(
        "eventfleet_live_connections",
        "Open live subscriptions by kind and transport.",
        labels=("kind", "via"),
    )
    events_sent: LoopCounter = loop_counter(
        "eventfleet_live_events_sent_total",
        "Events written to live subscribers, by kind.",
        label="kind",
    )
    gaps_filled: Counter = counter(
        "eventfleet_live_gaps_filled_total",
        "Times a live subscription read missed events from the store (a lost announcement, "
        "a feed reconnect), by kind.",
        labels=("kind",),
    )
    slow_closes: Counter = counter(
        "eventfleet_live_slow_closes_total",
        "Live subscriptions closed because the client read slower than events came, by kind.",
        labels=("kind",),
    )
    refused: Counter = counter(
        "eventfleet_live_refused_total",
        "Live subscriptions refused by limit (process, principal).",
        labels=("limit",),
    )
    latency: LoopHistogram = loop_histogram(
        "eventfleet_live_delivery_seconds",
        "From an event being stored (its occurred_at) to being written to a live subscriber.",
        buckets=LATENCY_BUCKETS_S,
    )


def create_live_metrics(registry: CollectorRegistry) -> LiveMetrics:
    """Apart from ``Metrics`` so that only processes that serve subscribers carry them."""
    return create(LiveMetrics, registry)


@dataclass(frozen=True, slots=True)
class RywMetrics:
    """Read your writes: the reads waiting for their writes, those refused, the store checks."""

    waiters: Gauge = gauge(
        "eventfleet_ryw_waiters",
        "Reads waiting now for their writes (min_version, command_id).",
    )
    refused: Counter = counter(
        "eventfleet_ryw_refused_total",
        "Reads refused a wait by limit (process, principal).",
        labels=("limit",),
    )
    checks: Counter = counter(
        "eventfleet_ryw_store_checks_total",
        "Store reads made for waiting reads, by read (heads, find, rejections, view); one "
        "read covers every waiter of a round.",
        labels=("read",),
    )


def create_ryw_metrics(registry: CollectorRegistry) -> RywMetrics:
    """Apart from ``Metrics``: only processes that serve reads carry them."""
    return create(RywMetrics, registry)


@dataclass(frozen=True, slots=True)
class ProcessMetrics:
    """The process managers' metrics (``process``: a declared manager's name)."""

    events: Counter = counter(
        "eventfleet_process_events_total",
        "Stored events a process manager took, by outcome (applied, skipped: seen already, "
        "unmatched: no instance to advance, held: its instance is stuck, dropped, stuck).",
        labels=("process", "outcome"),
    )
    commands: Counter = counter(
        "eventfleet_process_commands_total",
        "Commands process managers sent, by the door's answer (accepted, duplicate: sent "
        "before, refused: the instance is stuck, pending: to be sent again).",
        labels=("process", "outcome"),
    )
    deadlines: Counter = counter(
        "eventfleet_process_deadlines_total",
        "Deadlines set, cancelled, fired, and deferred (the instance had stored events it "
        "had not reacted to yet, or the door had accepted events the store did not hold yet).",
        labels=("process", "outcome"),
    )
    deadline_delay: Histogram = histogram(
        "eventfleet_process_deadline_delay_seconds",
        "From a deadline's due time to its firing (the stated bound: the poll interval plus "
        "the role's lag on the instance's events).",
        labels=("process",),
        buckets=DEADLINE_DELAY_BUCKETS_S,
    )
    stuck: Counter = counter(
        "eventfleet_process_stuck_total",
        "Instances that stopped (reaction_failed, reaction_invalid, command_refused, "
        "state_unstorable), dead-lettered until an operator retries them.",
        labels=("process", "reason"),
    )


def create_process_metrics(registry: CollectorRegistry) -> ProcessMetrics:
    """Apart from ``Metrics``: only processes that run the pm role carry them."""
    return create(ProcessMetrics, registry)


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
