"""The ``eventfleet`` command: dev stack, workers, topics, queries and benchmarks."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from topics.errors import EventfleetError
from workers.cli import dlq as dlq_cli
from workers.runtime.compose import OPTIONAL_ROLES, ROLES, Runtime
from workers.runtime.lag import LAG_ROLE
from workers.runtime.settings import Settings, documented

log = logging.getLogger("eventfleet")


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    quiet = "WARNING" if level.lower() != "debug" else "DEBUG"
    for noisy in ("faust", "mode", "aiokafka", "aiohttp", "pymongo", "kafka"):
        logging.getLogger(noisy).setLevel(quiet)


def parser() -> argparse.ArgumentParser:
    settings_help = "\n".join(
        f"  {name:<36} {doc} (default: {default!r})" for name, default, doc in documented()
    )
    top = argparse.ArgumentParser(
        prog="eventfleet",
        description="An event-sourcing worker fleet for Kafka.",
        epilog="environment variables:\n" + settings_help,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dev = commands.add_parser("dev", help="start the embedded stack and every role in one process")
    dev.add_argument("--port", type=int, default=8080, help="HTTP port of the API (default 8080)")
    dev.add_argument(
        "--demo", action="store_true", help="drive a mixed workload, verify it, then exit"
    )
    dev.add_argument(
        "--demo-scale", type=float, default=1.0, help="demo size factor (0.1: a quick run)"
    )

    worker = commands.add_parser("worker", help="run one role against the configured services")
    worker.add_argument(
        "--role",
        required=True,
        choices=(*ROLES, *OPTIONAL_ROLES, LAG_ROLE, "all"),
        help="'all': every pipeline role (bridge runs only when named); "
        "'lag': export every group's lag, read from Kafka",
    )
    worker.add_argument("--projection", help="with --role projection: the projection to run")

    topics = commands.add_parser("topics", help="topic administration")
    topics_commands = topics.add_subparsers(dest="topics_command", required=True, metavar="ACTION")
    topics_commands.add_parser(
        "ensure", help="create missing topics, report mismatched ones (exit 1)"
    )

    projections = commands.add_parser("projections", help="read models kept from events.stored")
    projection_actions = projections.add_subparsers(
        dest="projections_command", required=True, metavar="ACTION"
    )
    rebuild = projection_actions.add_parser(
        "rebuild",
        help="recompute a projection's views from the event store; the fleet keeps running",
    )
    rebuild.add_argument("name", help="the projection, e.g. chat_messages")

    audit = commands.add_parser(
        "audit",
        help="check that stored histories, snapshots, views, marks and topics agree",
        description=(
            "Replays every aggregate from the store and reports invalid histories, gaps, "
            "snapshots or views that differ from replay, marks that disagree with the store "
            "beyond a bound, and routed topics that miss, reorder or double events. "
            "Exit 0: all agree; 1: findings (doubles alone are warnings); 2: usage."
        ),
    )
    audit.add_argument("aggregate_types", nargs="*", help="only these types (default: all)")
    audit.add_argument("--json", action="store_true", help="print the report as JSON")
    audit.add_argument("--skip-topics", action="store_true", help="do not read topics")
    audit.add_argument("--skip-marks", action="store_true", help="do not read Redis marks")
    audit.add_argument(
        "--mark-bound-s",
        type=float,
        default=2.0,
        help="how long a mark may name an event in flight (default 2)",
    )

    replay = commands.add_parser("replay", help="print an aggregate's events and replayed state")
    replay.add_argument("aggregate_type")
    replay.add_argument("aggregate_id")
    replay.add_argument("--at-version", type=int, default=None)

    bench = commands.add_parser(
        "bench", help="benchmarks on the embedded stack, next to their baselines"
    )
    bench.add_argument(
        "path",
        choices=("commands", "append", "state", "scale", "all"),
        help="which path: the command path over HTTP, append, state query, append scale-out",
    )
    bench.add_argument("--json", action="store_true", help="print each table as a JSON line")
    bench.add_argument(
        "--events", type=int, default=20_000, help="events or commands per measurement"
    )

    dlq_cli.add_parser(commands)  # `eventfleet dlq list|replay` (workers/cli/dlq.py)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except EventfleetError as e:
        print(f"eventfleet: {e}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    handlers: dict[str, Callable[[Settings, Any], Coroutine[Any, Any, int]]] = {
        "dev": run_dev,
        "worker": run_worker,
        "topics": run_topics,
        "replay": run_replay,
        "audit": run_audit,
        "projections": run_projections,
        "bench": run_bench,
        "dlq": dlq_cli.run_dlq,  # workers/cli/dlq.py
    }
    try:
        return asyncio.run(handlers[args.command](settings, args))
    except EventfleetError as e:
        print(f"eventfleet: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


async def run_dev(settings: Settings, args: Any) -> int:
    from workers.devtools.dev import dev

    return await dev(settings, port=args.port, demo=args.demo, demo_scale=args.demo_scale)


async def run_worker(settings: Settings, args: Any) -> int:
    from workers.runtime.compose import load_domains
    from workers.runtime.rebuild import projection_named
    from workers.runtime.serve import serve

    if args.role == "projection" and not args.projection:
        print("eventfleet: --role projection needs --projection NAME", file=sys.stderr)
        return 2
    if args.projection:  # an unknown name fails before any connection
        projection_named(load_domains(settings.domains), args.projection)
    roles = ROLES if args.role == "all" else (args.role,)
    runtime = await Runtime.start(settings, roles=roles)
    suffix = f"projection-{args.projection}" if args.role == "projection" else args.role
    projections = (args.projection,) if args.role == "projection" else ()
    return await serve(
        runtime, roles, app_id=f"{settings.group_id}-{suffix}", projections=projections
    )


async def run_topics(settings: Settings, args: Any) -> int:
    from workers.adapters.kafka import ensure_topics
    from workers.runtime.compose import load_domains
    from workers.runtime.connections import fleet_catalog, kafka_config

    specs = fleet_catalog(settings, load_domains(settings.domains))
    reports = await ensure_topics(kafka_config(settings), specs)
    for report in reports:
        print(f"{report.status:<9} {report.name} {report.detail}".rstrip())
    return 1 if any(report.status == "mismatch" for report in reports) else 0


async def run_projections(settings: Settings, args: Any) -> int:
    from workers.runtime.rebuild import run_rebuild

    return await run_rebuild(settings, args.name)


async def run_replay(settings: Settings, args: Any) -> int:
    import orjson

    runtime = await Runtime.start(settings, roles=())  # read-only: no producer, no Redis
    try:
        domain = runtime.domains.get(args.aggregate_type)
        events = await runtime.events.read(
            (domain.name, args.aggregate_id), to_version=args.at_version
        )
        for event in events:
            print(
                f"v{event.version:<5} {event.occurred_at.isoformat()} {event.type} {orjson.dumps(event.data).decode()}"
            )
        folded = await runtime.loader.at(domain, args.aggregate_id, version=args.at_version)
        print(
            orjson.dumps(
                {"version": folded.version, "state": folded.state}, option=orjson.OPT_INDENT_2
            ).decode()
        )
        return 0 if events else 1
    finally:
        await runtime.stop()


async def run_audit(settings: Settings, args: Any) -> int:
    import orjson

    from workers.runtime.audit import auditor

    runtime = await Runtime.start(settings, roles=())  # read-only: no producer
    try:
        checker = await auditor(
            runtime,
            topics=not args.skip_topics,
            marks=not args.skip_marks,
            mark_bound_s=args.mark_bound_s,
        )
        report = await checker.audit(args.aggregate_types or None)
    finally:
        await runtime.stop()
    if args.json:
        print(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        checked = ", ".join(f"{n} {what}" for what, n in sorted(report.checked.items()))
        print(f"audited {report.aggregates} aggregates, {report.events} events ({checked})")
        for f in report.findings:
            level = "error" if f.error else "warning"
            print(f"{level:<7} {f.kind:<18} {f.aggregate_type} {f.aggregate_id}: {f.detail}")
        print("ok: everything agrees" if report.ok else "FAILED: see the errors above")
    return 0 if report.ok else 1


async def run_bench(settings: Settings, args: Any) -> int:
    from workers.devtools.bench import bench

    return await bench(settings, path=args.path, events=args.events, as_json=args.json)
