"""``eventfleet archive [TYPE ...] [--dry-run]``: move the history each domain's retention lets
go from the hot collection to the archive, in bounded batches, beside live traffic.

Exit codes: 0 done (or nothing due), 1 failure (a store down), 2 usage.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from topics.errors import EventfleetError
from workers.cli.parsing import Commands, command
from workers.cli.shell import USAGE, fail, print_json
from workers.runtime.settings import Settings


def add_parser(commands: Commands) -> None:
    archive = command(
        commands,
        "archive",
        "move history past each domain's retention to the archive (--dry-run: only say)",
        "Moves events covered by a snapshot and past the domain's retention (an age "
        "or a count; never the newest event) from the events collection to events_archive, "
        "same documents and ids, BATCH events at a time. Reads span both as if nothing moved. "
        "Domains without a retention are left alone.",
    )
    archive.add_argument("aggregate_types", nargs="*", help="only these types (default: all)")
    archive.add_argument("--dry-run", action="store_true", help="say what would move; move nothing")
    archive.add_argument(
        "--batch", type=int, default=500, help="events per copy and delete (1 or more)"
    )
    archive.add_argument("--json", action="store_true", help="print the moves as JSON")


async def run_archive(
    settings: Settings, args: argparse.Namespace, *, out: TextIO | None = None
) -> int:
    from workers.roles.ops.archive import Archiver
    from workers.runtime.compose import Runtime
    from workers.runtime.loading import load_domains

    out = out or sys.stdout
    if args.batch < 1:
        return fail(f"--batch must be 1 or more, got {args.batch}", USAGE)
    domains = load_domains(settings.domains)
    for name in args.aggregate_types:
        domains.get(name)  # an unknown type fails before any connection
    async with Runtime.running(settings, roles=(), domains=domains) as runtime:
        try:
            archiver = Archiver(runtime.events, runtime.snapshots, domains, batch=args.batch)
            types = args.aggregate_types or None
            moves = await (archiver.plan(types) if args.dry_run else archiver.run(types))
        except EventfleetError as e:
            return fail(str(e))
    verb = "would move" if args.dry_run else "moved"
    if args.json:
        rows = [
            {
                "aggregate_type": m.aggregate[0],
                "aggregate_id": m.aggregate[1],
                "from_version": m.from_version,
                "through_version": m.through_version,
                "events": m.events,
            }
            for m in moves
        ]
        return print_json(out, {"dry_run": args.dry_run, "moves": rows})
    for m in moves:
        out.write(
            f"{verb} {m.aggregate[0]} {m.aggregate[1]} v{m.from_version}..v{m.through_version}"
            f" ({m.events} events)\n"
        )
    out.write(f"{verb} {sum(m.events for m in moves)} events of {len(moves)} aggregates\n")
    return 0
