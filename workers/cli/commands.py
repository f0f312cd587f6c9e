"""What each ``eventfleet`` subcommand does, given the settings and its parsed arguments.

Read-only commands (``replay``, ``audit``, ``topics check``, ``projections rebuild``) build
their runtime with ``roles=()``: no Kafka producer, no Redis connection. Every handler (here
and in the commands' own modules) imports what it runs, the runtime and its drivers, when it is
called: a command loads only its own part of the fleet, ``--help`` or a usage error none of it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING

import orjson

from topics.envelope import utc_text
from topics.errors import EventfleetError
from workers.cli import archive, dlq, erase, events, openapi, pm
from workers.cli.shell import fail, print_json
from workers.runtime.role_names import PM_ROLE
from workers.runtime.settings import Settings

if TYPE_CHECKING:
    from topics.envelope import Event
    from workers.ports import AggregateRef, EventStore

Handler = Callable[[Settings, argparse.Namespace], Coroutine[object, None, int]]


class CommandFailed(EventfleetError):
    """A command could not do what it was asked; the message says why and what to do."""


class UsageError(EventfleetError):
    """Arguments that argparse alone cannot check do not fit together (exit 2)."""


async def run_dev(settings: Settings, args: argparse.Namespace) -> int:
    from workers.devtools.dev_port import http_port

    port = http_port(settings, args.port)  # a taken port is refused before the fleet loads
    from workers.devtools.dev import dev

    return await dev(
        settings,
        port=port,
        redis_url=args.redis,
        demo=args.demo,
        demo_scale=args.demo_scale,
        read_only=args.read_only,
    )


async def run_worker(settings: Settings, args: argparse.Namespace) -> int:
    from workers.runtime.collector import collect_rarely, freeze_loaded

    tuned = settings.gc_threshold > 0  # 0: Python's own collector, as it comes
    if tuned:
        collect_rarely()  # until serve has started the fleet: it then calls collect_less
    from workers.http import register
    from workers.runtime.compose import Runtime, all_roles
    from workers.runtime.connections import required_master_key
    from workers.runtime.door.auth import make_authenticator
    from workers.runtime.loading import load_domains, load_processes
    from workers.runtime.rebuild import projection_named
    from workers.runtime.serve import serve
    from workers.secrets import read_secrets

    if args.role == "projection" and not args.projection:
        raise UsageError("worker: --role projection needs --projection NAME")
    domains = load_domains(settings.domains)  # a bad domain set fails before any connection
    processes = load_processes(settings.processes, domains)
    if tuned:
        freeze_loaded()  # every module this process runs is imported by now
    if args.role == PM_ROLE and not processes:
        raise UsageError(
            "worker --role pm: EVENTFLEET_PROCESSES names no process manager, so the role has "
            "nothing to run; set it to a function returning Processes([...])"
        )
    if args.projection:
        projection_named(domains, args.projection)
    secrets = read_secrets(settings)  # every secret, read and checked once, before connecting
    # No explicit, working choice of who may call: refuse before any connection.
    authenticator = await make_authenticator(settings, secrets, required=True)
    required_master_key(secrets, domains)  # personal data and no master key: refuse as well
    roles = all_roles(settings) if args.role == "all" else (args.role,)
    runtime = await Runtime.start(
        settings, roles=roles, domains=domains, secrets=secrets, processes=processes
    )
    suffix = f"projection-{args.projection}" if args.role == "projection" else args.role
    projections = (args.projection,) if args.role == "projection" else ()
    return await serve(
        runtime,
        roles,
        app_id=f"{settings.group_id}-{suffix}",
        views=register,
        projections=projections,
        hard_exit=True,
        authenticator=authenticator,
    )


async def run_topics(settings: Settings, args: argparse.Namespace) -> int:
    from workers.adapters.kafka import ensure_topics
    from workers.runtime.connections import fleet_catalog, kafka_config
    from workers.runtime.loading import load_domains
    from workers.secrets import read_secrets

    specs = fleet_catalog(settings, load_domains(settings.domains))
    create = args.topics_command == "ensure"
    reports = await ensure_topics(
        kafka_config(settings, read_secrets(settings)), specs, create=create
    )
    if args.json:
        rows = [{"name": r.name, "status": r.status, "detail": r.detail} for r in reports]
        print_json(sys.stdout, rows)
    else:
        for report in reports:
            print(f"{report.status:<9} {report.name} {report.detail}".rstrip())
    bad = [r for r in reports if r.status in ("mismatch", "missing")]
    if bad and not args.json:
        return fail(
            f"{len(bad)} topic(s) differ from the catalog "
            f"(EVENTFLEET_PARTITIONS={settings.partitions}); set EVENTFLEET_PARTITIONS to the "
            "broker's count or recreate them"
            + (", or run `eventfleet topics ensure`" if not create else "")
        )
    return 1 if bad else 0


async def run_projections(settings: Settings, args: argparse.Namespace) -> int:
    from workers.runtime.rebuild import run_rebuild

    return await run_rebuild(settings, args.name)


async def run_replay(settings: Settings, args: argparse.Namespace) -> int:
    from workers.runtime.compose import Runtime
    from workers.runtime.loading import load_domains

    domains = load_domains(settings.domains)
    domain = domains.get(args.aggregate_type)  # an unknown type fails before any connection
    async with Runtime.running(
        settings, roles=(), domains=domains
    ) as runtime:  # no producer, no Redis
        ref = (domain.name, args.aggregate_id)
        if not await runtime.events.heads([ref]):
            raise CommandFailed(
                f"{domain.name} {args.aggregate_id} has no events in the store "
                f"{settings.mongo_database} at {settings.masked('mongo_url')}; check the id, "
                "or point EVENTFLEET_MONGO_URL at the store that holds it"
            )
        folded = await runtime.loader.at(domain, args.aggregate_id, version=args.at_version)
        events, more = await _replayed_events(runtime.events, ref, args, folded.version)
        events = await runtime.shredder.open_events(events)
        state = await runtime.shredder.open(folded.state)
    next_after = events[-1].version or 0 if events else args.after_version
    if args.json:
        return print_json(
            sys.stdout,
            {
                "aggregate_type": domain.name,
                "aggregate_id": args.aggregate_id,
                "version": folded.version,
                "state": state,
                "events": [
                    {
                        "version": e.version,
                        "occurred_at": utc_text(e.occurred_at),
                        "type": e.type,
                        "id": e.id,
                        "data": e.data,
                    }
                    for e in events
                ],
                "more": more,
                "next_after_version": next_after,
            },
        )
    for e in events:
        data = orjson.dumps(e.data).decode()
        print(f"v{e.version:<5} {utc_text(e.occurred_at)} {e.type} {data}")
    if more:
        print(f"more events: --after-version {next_after} continues", file=sys.stderr)
    return print_json(sys.stdout, {"version": folded.version, "state": state}, indent=True)


async def _replayed_events(
    store: EventStore, ref: AggregateRef, args: argparse.Namespace, up_to: int
) -> tuple[list[Event], bool]:
    """The events to print up to version ``up_to`` (one page of ``--limit``, or all of them,
    read in bounded pages), and whether more follow (versions are contiguous, so the last one
    printed says it)."""
    from workers.roles.read.paging import read_all, read_page

    if args.limit is None:
        found = [e async for e in read_all(store, ref, after_version=args.after_version)]
    else:
        page = await read_page(store, ref, after_version=args.after_version, limit=args.limit)
        found = page.events
    shown = [e for e in found if (e.version or 0) <= up_to]
    last = shown[-1].version or 0 if shown else args.after_version
    return shown, last < up_to


async def run_audit(settings: Settings, args: argparse.Namespace) -> int:
    from workers.runtime.audit import auditor
    from workers.runtime.compose import Runtime

    async with Runtime.running(settings, roles=()) as runtime:  # read-only: no producer
        checker = await auditor(
            runtime,
            topics=not args.skip_topics,
            marks=not args.skip_marks,
            mark_bound_s=args.mark_bound_s,
        )
        report = await checker.audit(args.aggregate_types or None)
    if args.json:
        print_json(sys.stdout, report.as_dict(), indent=True)
    else:
        checked = ", ".join(f"{n} {what}" for what, n in sorted(report.checked.items()))
        print(f"audited {report.aggregates} aggregates, {report.events} events ({checked})")
        for f in report.findings:
            level = "error" if f.error else "warning"
            print(f"{level:<7} {f.kind:<18} {f.aggregate_type} {f.aggregate_id}: {f.detail}")
        print("ok: everything agrees" if report.ok else "FAILED: see the errors above")
    return 0 if report.ok else 1


async def run_bench(settings: Settings, args: argparse.Namespace) -> int:
    from workers.devtools.bench import bench

    return await bench(
        settings,
        path=args.path,
        events=args.events,
        as_json=args.json,
        rounds=args.rounds,
        plot=args.plot,
    )


HANDLERS: dict[str, Handler] = {
    "dev": run_dev,
    "worker": run_worker,
    "topics": run_topics,
    "replay": run_replay,
    "audit": run_audit,
    "projections": run_projections,
    "bench": run_bench,
    "dlq": dlq.run_dlq,  # workers/cli/dlq.py
    "pm": pm.run_pm,  # workers/cli/pm.py
    "erase": erase.run_erase,  # workers/cli/erase.py
    "archive": archive.run_archive,  # workers/cli/archive.py
    "openapi": openapi.run_openapi,  # workers/cli/openapi.py
    "events": events.run_events,  # workers/cli/events.py
}
