"""The settings of each role's work, and of the process that runs the roles."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from workers.runtime.settings.values import MOST, Concern, budgets, text


class Commands(Concern):
    """The command side: how long a command is remembered, and how long it waits."""

    marker_ttl_s: int = Field(86_400, ge=1, le=MOST)
    """lifetime of an aggregate's mark; the store is the truth after it"""
    command_ttl_s: int = Field(86_400, ge=1, le=MOST)
    """how long a command_id's first answer (or its last refusal at the door) is remembered"""
    refusal_wait_ms: int = Field(3000, ge=0, le=600_000)
    """a refusal the store must confirm waits at most this long for the appender to catch up
    (then 503 store_catching_up)"""
    sync_publish_budget_ms: int = Field(1000, ge=1, le=600_000)
    """sync mode: longest a request waits for Kafka after storing (then 201 published=false)"""
    multi_append_max_items: int = Field(100, ge=1, le=1000)
    """most items (aggregates) one POST /v1/appends may name; each is a write of the
    principal's budget, and all are stored in one transaction (400 bad_request above)"""
    write_budget_per_s: int = Field(200, ge=0, le=10_000_000)
    """appends a second each principal may make on average, counted across every commands
    process (0: no budget); 429 too_many_writes above"""
    write_budget_burst: int = Field(400, ge=1, le=100_000_000)
    """appends a principal may make at once before its rate holds it back (the bucket's size)"""
    write_budget_principals: Annotated[str, budgets()] = ""
    """budgets of named principals instead of the default, name=rate[/burst] comma-separated
    (burst: twice the rate unless given; 0: no budget), e.g. importer=2000/4000,probe=0"""
    write_budget_roles: Annotated[str, budgets()] = ""
    """budgets by role, role=rate[/burst] comma-separated: a principal holding several gets the
    largest, its own entry in EVENTFLEET_WRITE_BUDGET_PRINCIPALS wins over them"""


class Appender(Concern):
    """The appender: its batches, and the forwarder behind it."""

    append_wait_ms: int = Field(2000, ge=0, le=600_000)
    """longest an event waits at the appender for the event it was validated after"""
    batch_size: int = Field(500, ge=1, le=100_000)
    """most events one appender batch takes"""
    batch_within_ms: int = Field(10, ge=1, le=60_000)
    """longest an appender batch waits to fill"""
    forward_lookback_s: int = Field(60, ge=0, le=86_400)
    """a forwarder reads its downstream topics back from this long before the first uncommitted
    events.stored record of a partition it is assigned (hosts' clocks apart, an appender's late
    republish)"""


class ProcessManagers(Concern):
    """Process managers: which run, and how often the pm role looks for work besides events."""

    processes: Annotated[str, text("module:callable", lambda s: not s or ":" in s)] = ""
    """callable returning the enabled Processes (process managers, beside the domains); empty: none
    (`eventfleet dev` runs the examples' order_lifecycle when EVENTFLEET_DOMAINS is unset too)"""
    process_poll_ms: int = Field(500, ge=10, le=60_000)
    """how often the pm role looks for due deadlines, retries and unsent commands: a deadline
    fires at most this long after it is due, once the instance has reacted to the stored events
    of its aggregates, plus one command's answer"""
    process_unsent_after_s: int = Field(5, ge=1, le=3600)
    """commands an instance decided and has not sent after this long (their process died) are
    sent by whichever pm process polls next"""
    process_accepted_wait_s: int = Field(30, ge=0, le=3600)
    """a due deadline waits at most this long (from when a pm process first finds it due) while
    the command door has accepted events on its instance's aggregates that the store does not
    hold yet (their reaction may cancel it); past it, it fires on the stored events alone (0:
    never waits)"""


class Snapshots(Concern):
    """Snapshots: how many rebuild at once, when a replay saves one, the ladder, the audit."""

    snapshot_concurrency: int = Field(4, ge=1, le=1024)
    """snapshot rebuilds running at once per process"""
    snapshot_tail: int = Field(100, ge=1, le=MOST)
    """a query or validation replaying more events than this saves its snapshot at once"""
    snapshot_query_interval_ms: int = Field(1000, ge=0, le=86_400_000)
    """a query or validation saves the state it replayed at most this often per aggregate"""
    snapshot_ladder_step: int = Field(1000, ge=0, le=10**9)
    """keep a dated snapshot (a rung) every this many versions, so a state at a past version or
    time replays at most about this many events; 0: no ladder"""
    audit_interval_s: int = Field(30, ge=0, le=86_400)
    """snapshotter processes audit a sample of recently stored aggregates this often (0: off)"""


class Reads(Concern):
    """Reads that wait for their writes (min_version, command_id), and the global read."""

    ryw_max_waiters: int = Field(2000, ge=0, le=1_000_000)
    """reads waiting for their writes (min_version, command_id) in one process at once (429
    above)"""
    ryw_max_waiters_per_principal: int = Field(100, ge=1, le=1_000_000)
    """reads one principal has waiting for their writes on one process (429 above)"""
    ryw_poll_ms: int = Field(1000, ge=10, le=600_000)
    """how often the store is checked for an aggregate reads wait on (one check for all its
    waiters; the live feed wakes them at once, this catches a lost announcement)"""
    global_read_scan: int = Field(5000, ge=100, le=1_000_000)
    """records of events.stored one page of GET /v1/events reads at most: a filter that keeps
    little answers a shorter (even empty) page with more true"""
    global_read_readers: int = Field(4, ge=1, le=64)
    """Kafka consumers one process keeps for the pages of GET /v1/events: that many pages are
    read at once, the others wait their turn"""


class Live(Concern):
    """Live subscriptions (WebSockets) and the tickets that open them."""

    live_buffer_events: int = Field(1000, ge=1, le=1_000_000)
    """live events one subscriber may hold unsent; past it the slow client is closed with its
    position"""
    live_heartbeat_s: int = Field(15, ge=1, le=3600)
    """a quiet live subscription gets a heartbeat and a store check this often (at most twice
    this after the last event it was handed); a write waiting twice this long ends the
    connection"""
    ticket_ttl_s: int = Field(30, ge=1, le=600)
    """a ticket (POST /v1/tickets) opens one live connection within this many seconds"""
    tickets_per_principal: int = Field(100, ge=1, le=1_000_000)
    """tickets one principal may hold in Redis at once (each counts until 5 minutes past its
    expiry, used or not); 429 too_many_tickets above"""
    tickets_max_held: int = Field(20_000, ge=1, le=100_000_000)
    """tickets the fleet holds in Redis at most, every principal's together (about 1 KB each);
    429 too_many_tickets above"""
    live_max_connections: int = Field(10_000, ge=0, le=10_000_000)
    """live subscriptions one process serves at once (429 above)"""
    live_max_per_principal: int = Field(100, ge=1, le=1_000_000)
    """live subscriptions one client holds on one process (429 above)"""


class Process(Concern):
    """The process every role runs in: its domains, loop, health checks, stop and memory."""

    domains: Annotated[str, text("module:callable", lambda s: not s or ":" in s)] = ""
    """callable returning the enabled Domains (required: a worker and every command that reads
    the store refuse to start without it; `eventfleet dev` runs the examples,
    workers.examples.domains:default_domains, when it is unset)"""
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    """the event loop of the serving commands (worker, dev): uvloop (libuv underneath; about 9%
    less CPU per command, measured side by side) or Python's own asyncio"""
    secrets_dir: str = ""
    """a directory of secrets, one file each named after its variable (EVENTFLEET_MONGO_URL,
    EVENTFLEET_MASTER_KEY, ...), e.g. a whole Kubernetes Secret mounted there; instead of a
    secret's _FILE or _ENV"""
    max_event_bytes: int = Field(1024 * 1024, ge=1024, le=MOST)
    """largest event accepted off a topic (dead-lettered above)"""
    health_interval_s: int = Field(5, ge=1, le=300)
    """how often dependencies are checked for /healthz?verbose and metrics"""
    lag_interval_s: int = Field(15, ge=1, le=3600)
    """how often the lag role reads group offsets and high-water marks"""
    drain_timeout_s: int = Field(20, ge=1, le=3600)
    """on SIGTERM: longest wait for the in-flight batch"""
    gc_threshold: int = Field(50_000, ge=0, le=10_000_000)
    """allocations between two of Python's youngest cyclic collections in a worker, whose
    startup objects are frozen out of them (0: Python's defaults, nothing frozen)"""


LOG_LEVELS = ("debug", "info", "warning", "error")


class Observability(Concern):
    """Logs and traces."""

    log_level: Annotated[
        str, text("debug, info, warning or error", lambda s: s.lower() in LOG_LEVELS)
    ] = "info"
    """log level"""
    log_format: Literal["text", "json"] = "text"
    """text, or json: one JSON object a line, with trace_id and span_id on every line written
    inside a span; both escape control characters and line separators in every value, so no
    input forges a line"""
    tracing: bool = False
    """trace even with no OTLP endpoint named (spans go to OTEL_EXPORTER_OTLP_ENDPOINT's default,
    http://localhost:4318); tracing is on whenever an OTLP endpoint is named"""
