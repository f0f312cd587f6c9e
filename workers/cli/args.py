"""The ``eventfleet`` command line: every command, its description and options (dlq, erase,
archive, openapi, pm and events declare theirs in their own modules)."""

from __future__ import annotations

from workers.cli import archive, dlq, erase, events, openapi, pm
from workers.cli.parsing import Commands, Formatter, Parser, at_least, command, port, positive_float
from workers.cli.version import package_version
from workers.runtime.role_names import LAG_ROLE, OPTIONAL_ROLES, ROLES
from workers.runtime.settings import documented

BENCH_PATHS = ("commands", "append", "state", "scale", "live", "fairness", "pm", "global", "all")
"""``eventfleet bench``'s paths (``workers.devtools.bench.PATHS``: a test keeps them equal; the
bench package is imported only when a bench runs)."""


def parser() -> Parser:
    settings_help = "\n".join(
        f"  {name:<36} {doc} (default: {default!r})" for name, default, doc in documented()
    )
    top = Parser(
        prog="eventfleet",
        description="An event-sourcing worker fleet for Kafka.",
        epilog="environment variables:\n" + settings_help,
        formatter_class=Formatter,
    )
    top.add_argument("--version", action="version", version=f"eventfleet {package_version()}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _dev(commands)
    _worker(commands)
    _topics(commands)
    _projections(commands)
    _audit(commands)
    _replay(commands)
    _bench(commands)
    dlq.add_parser(commands)  # `eventfleet dlq list|parked|replay|skip` (workers/cli/dlq.py)
    erase.add_parser(commands)  # `eventfleet erase SUBJECT` (workers/cli/erase.py)
    archive.add_parser(commands)  # `eventfleet archive` (workers/cli/archive.py)
    openapi.add_parser(commands)  # `eventfleet openapi` (workers/cli/openapi.py)
    pm.add_parser(commands)  # `eventfleet pm list|show|deadlines|retry` (workers/cli/pm.py)
    events.add_parser(commands)  # `eventfleet events` (workers/cli/events.py)
    return top


def _dev(commands: Commands) -> None:
    dev = command(
        commands,
        "dev",
        "start the embedded stack and every role in one process",
        "Starts Kafka (Tansu), MongoDB (SecantusDB) and its own Redis on free loopback ports, "
        "unless EVENTFLEET_KAFKA_URL, _MONGO_URL or _REDIS_URL (or --redis) name them, then "
        "every role, the HTTP API and the operator console (http://127.0.0.1:PORT/console: "
        "aggregates, timelines, dead letters, lag). It prints an `export ...` block that points "
        "every other command at this stack. Ctrl-C drains and stops it (exit 130); everything "
        "it started or wrote goes away when it stops.",
    )
    dev.add_argument(
        "--port",
        type=port,
        default=None,
        help="HTTP port of the API; 0: any free port (default: $EVENTFLEET_HTTP_PORT or 8080)",
    )
    dev.add_argument(
        "--redis",
        metavar="URL",
        default=None,
        help="use this Redis (e.g. redis://127.0.0.1:6379/5) instead of starting one; "
        "also EVENTFLEET_REDIS_URL",
    )
    dev.add_argument(
        "--demo", action="store_true", help="drive a mixed workload, verify it, then exit"
    )
    dev.add_argument(
        "--demo-scale", type=positive_float, default=1.0, help="demo size factor (0.1: quick)"
    )
    dev.add_argument(
        "--read-only",
        action="store_true",
        help="the console's operator actions off (dead-letter replay, erasure); dev turns them "
        "on by default, unlike a worker",
    )


def _worker(commands: Commands) -> None:
    worker = command(
        commands,
        "worker",
        "run one role against the configured services",
        "Runs one role (or all pipeline roles) against the services EVENTFLEET_* name, "
        "until SIGTERM or Ctrl-C, then drains.",
    )
    worker.add_argument(
        "--role",
        required=True,
        choices=(*ROLES, *OPTIONAL_ROLES, LAG_ROLE, "all"),
        help="'all': every pipeline role, and pm when EVENTFLEET_PROCESSES names process "
        "managers (bridge runs only when named); 'lag': export every group's lag, read from Kafka",
    )
    worker.add_argument("--projection", help="with --role projection: the projection to run")


def _topics(commands: Commands) -> None:
    topics = command(
        commands,
        "topics",
        "topic administration",
        "Compare the topics of the enabled domains with the broker (EVENTFLEET_PARTITIONS "
        "partitions each).",
    )
    actions = topics.add_subparsers(dest="topics_command", required=True, metavar="ACTION")
    ensure = command(
        actions,
        "ensure",
        "create missing topics, report mismatched ones (exit 1)",
        "Creates every missing topic of the catalog; exit 1 when an existing one has another "
        "partition count.",
    )
    check = command(
        actions,
        "check",
        "report missing and mismatched topics (exit 1), create nothing",
        "Read-only: reports topics that are missing or have another partition count; exit 1 "
        "when any is.",
    )
    for action in (ensure, check):
        action.add_argument("--json", action="store_true", help="print the reports as JSON")


def _projections(commands: Commands) -> None:
    projections = command(
        commands,
        "projections",
        "read models kept from events.stored",
        "Administration of the projections (read models) of the enabled domains.",
    )
    actions = projections.add_subparsers(
        dest="projections_command", required=True, metavar="ACTION"
    )
    rebuild = command(
        actions,
        "rebuild",
        "recompute a projection's views from the event store; the fleet keeps running",
        "Recomputes every view of one projection from the event store, with progress on "
        "stderr; the running fleet keeps serving meanwhile.",
    )
    rebuild.add_argument("name", help="the projection, e.g. chat_messages")


def _audit(commands: Commands) -> None:
    audit = command(
        commands,
        "audit",
        "check that stored histories, snapshots, views, marks and topics agree",
        "Replays every aggregate from the store and reports invalid histories, gaps, "
        "snapshots or views that differ from replay, marks that disagree with the store "
        "beyond a bound, and routed topics that miss, reorder or double events. "
        "Exit 0: all agree; 1: findings (doubles alone are warnings); 2: usage.",
    )
    audit.add_argument("aggregate_types", nargs="*", help="only these types (default: all)")
    audit.add_argument("--json", action="store_true", help="print the report as JSON")
    audit.add_argument("--skip-topics", action="store_true", help="do not read topics")
    audit.add_argument("--skip-marks", action="store_true", help="do not read Redis marks")
    audit.add_argument(
        "--mark-bound-s",
        type=positive_float,
        default=2.0,
        help="how long a mark may name an event in flight",
    )


def _replay(commands: Commands) -> None:
    replay = command(
        commands,
        "replay",
        "print an aggregate's events and replayed state",
        "Read-only: reads the aggregate's history from the store (no Kafka, no Redis) and "
        "folds it. Exit 1 when the aggregate has no events.",
    )
    replay.add_argument("aggregate_type", help="e.g. order")
    replay.add_argument("aggregate_id", help="e.g. o-1")
    replay.add_argument(
        "--at-version",
        type=at_least(1),
        default=None,
        help="replay only up to this version (1 or more; default: the latest)",
    )
    replay.add_argument(
        "--after-version",
        type=at_least(0),
        default=0,
        help="print the events after this version (the next page's start; default: 0)",
    )
    replay.add_argument(
        "--limit",
        type=at_least(1),
        default=None,
        help="print at most this many events and say where the next page starts (default: all, "
        "read from the store in pages)",
    )
    replay.add_argument("--json", action="store_true", help="print events and state as JSON")


def _bench(commands: Commands) -> None:
    bench = command(
        commands,
        "bench",
        "benchmarks on the embedded stack, next to their baselines",
        "Measures a path next to the strongest baseline doing the same work, on the embedded "
        "stack (its own Redis unless EVENTFLEET_REDIS_URL names one; its keys are deleted "
        "afterwards). Progress goes to stderr, tables to stdout.",
    )
    bench.add_argument(
        "path",
        choices=BENCH_PATHS,
        help="which path: the command path over HTTP, append, state query, append scale-out, "
        "live subscriptions (1000 subscribers, 100 rooms, up to 10000 events per row, SSE and "
        "WebSocket), fairness (a quiet principal's write p99 beside another's flood, without "
        "and with write budgets), the process manager (up to 2000 stored events, one command "
        "each, against a bare consumer sending the same), global (the appender beside 4 live "
        "global readers and alone, pages read back beside a raw read, a sequence counter's "
        "cost per batch)",
    )
    bench.add_argument("--json", action="store_true", help="print each table as a JSON line")
    bench.add_argument(
        "--plot",
        default="eventfleet-bench-scale.svg",
        metavar="PATH",
        help="scale, all: where to write the SVG plot of rate and CPU per event against "
        "processes (default: eventfleet-bench-scale.svg)",
    )
    bench.add_argument(
        "--rounds",
        type=at_least(1),
        default=3,
        help="interleaved rounds per row, alternating which side goes first (default 3; "
        "the median and the min/max of the ratios are printed)",
    )
    bench.add_argument(
        "--events",
        type=at_least(2),
        default=20_000,
        help="events or commands per measurement (at least 2: latencies need two samples); "
        "state: rooms of 50 events, events/50 of them, 2 to 200",
    )
