"""``eventfleet pm list|show|deadlines|retry``: the process managers' desk from a shell.

Reads the store only (no producer, no Redis); a retry marks a stuck instance ``retrying`` (one
conditional write, audited as ``pm_retry``) and the pm role runs it at its next poll; with
``--wait S`` the command waits that long for the outcome. Exit codes: 0 done, 1 failure (not
found, not stuck, still stuck after the retry, a service down), 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, TextIO

from topics.envelope import utc_text
from topics.errors import ConfigError, EventfleetError, InvalidInput
from workers.cli.parsing import Commands, command
from workers.cli.shell import FAILURE, USAGE, fail, operator_name, print_json
from workers.ports import RETRYING, STATUSES, STUCK
from workers.runtime.settings import Settings

if TYPE_CHECKING:
    from workers.roles.process.desk import ProcessDesk


def add_parser(commands: Commands) -> None:
    """Register ``pm`` on the top-level subparsers."""
    pm = command(
        commands,
        "pm",
        "process managers: instances, deadlines, retry a stuck one",
        "The process managers EVENTFLEET_PROCESSES enables: their instances (state, "
        "pending deadlines, unsent commands, why one is stuck) and the retry of a stuck "
        "instance (audited; the pm role runs it).",
    )
    actions = pm.add_subparsers(dest="pm_command", required=True, metavar="ACTION")
    listing = command(
        actions,
        "list",
        "each process manager's instances by status, or one's instances",
        "Without NAME: every process manager with its instances by status. With "
        "NAME: its instances by key (--status, --after, --limit page through them).",
    )
    listing.add_argument("name", nargs="?", help="a process manager, e.g. order_lifecycle")
    listing.add_argument("--status", choices=STATUSES, help="only instances of this status")
    listing.add_argument("--after", help="list the instances after this key (a page's next)")
    listing.add_argument("--limit", type=int, default=50, help="instances per page (1-500)")
    show = command(
        actions,
        "show",
        "one instance, whole",
        "One instance: its status, state, pending deadlines, "
        "unsent commands, held events and why it is stuck.",
    )
    show.add_argument("name", help="the process manager")
    show.add_argument("key", help="the instance's key, e.g. an order id")
    deadlines = command(
        actions,
        "deadlines",
        "pending deadlines, the soonest first",
        "A process manager's pending deadlines, the soonest first.",
    )
    deadlines.add_argument("name", help="the process manager")
    deadlines.add_argument("--limit", type=int, default=50, help="deadlines shown (1-500)")
    for reading in (listing, show, deadlines):
        reading.add_argument("--json", action="store_true", help="print JSON")
    retry = command(
        actions,
        "retry",
        "retry a stuck instance (audited); the pm role runs it",
        "Marks a stuck instance to be retried: the pm role runs its failed "
        "reaction again (or sends its refused command again), then the events it held. With "
        "--wait S, waits up to S seconds for the outcome (exit 1 if it is stuck again).",
    )
    retry.add_argument("name", help="the process manager")
    retry.add_argument("key", help="the stuck instance's key")
    retry.add_argument("--operator", help="who retries, for the audit trail (default: $USER)")
    retry.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="S",
        help="wait up to S seconds for the retry's outcome (default: 0)",
    )


async def run_pm(settings: Settings, args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        _check(args)
    except InvalidInput as e:
        return fail(str(e), USAGE)
    try:
        async with _desk(settings) as desk:
            if args.pm_command == "list":
                return await _list(desk, args, out)
            if args.pm_command == "show":
                return await _show(desk, args, out)
            if args.pm_command == "deadlines":
                return await _deadlines(desk, args, out)
            return await _retry(desk, args, out)
    except ConfigError:
        raise  # a usage of the settings: the CLI's exit 2
    except EventfleetError as e:
        return fail(str(e))


def _check(args: argparse.Namespace) -> None:
    """What argparse cannot check, before any connection."""
    from workers.roles.deadletter import check_operator
    from workers.roles.process.desk import MAX_PAGE, check_key

    limit = getattr(args, "limit", 1)
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"--limit {limit} must be 1 to {MAX_PAGE}.")
    if getattr(args, "key", None) is not None:
        check_key(args.key, "key")
    if getattr(args, "after", None) is not None:
        check_key(args.after, "--after")
    if args.pm_command == "retry":
        if not 0 <= args.wait <= 3600:
            raise InvalidInput(f"--wait {args.wait} must be 0 to 3600 seconds.")
        args.operator = check_operator(operator_name(args.operator, "retries"), "retries")


async def _list(desk: ProcessDesk, args: argparse.Namespace, out: TextIO) -> int:
    if args.name is None:
        found = await desk.overview()
        if args.json:
            return print_json(out, [s.as_dict() for s in found])
        for s in found:
            counts = ", ".join(f"{n} {status}" for status, n in s.counts.items())
            out.write(f"{s.manager.name:<24} {counts}\n")
        out.write(f"{len(found)} process managers\n")
        return 0
    from workers.roles.process.desk import instance_dict

    page, following = await desk.page(
        args.name, status=args.status, after=args.after, limit=args.limit
    )
    if args.json:
        body = {"instances": [instance_dict(i) for i in page], "next_after": following}
        return print_json(out, body)
    for i in page:
        due = utc_text(i.next_due) if i.next_due else "-"
        why = f"  {i.stuck.reason}: {i.stuck.detail[:60]}" if i.stuck is not None else ""
        out.write(f"{i.key:<32} {i.status:<9} next due {due}{why}\n")
    more = f"; more after {following} (--after {following})" if following else ""
    out.write(f"{len(page)} instances of {args.name}{more}\n")
    return 0


async def _show(desk: ProcessDesk, args: argparse.Namespace, out: TextIO) -> int:
    from workers.roles.process.desk import instance_dict

    found = await desk.show(args.name, args.key)
    return print_json(out, instance_dict(found), indent=not args.json)


async def _deadlines(desk: ProcessDesk, args: argparse.Namespace, out: TextIO) -> int:
    from workers.roles.process.desk import deadline_dict

    pending = await desk.deadlines(args.name, limit=args.limit)
    if args.json:
        return print_json(out, [{"key": k, **deadline_dict(d)} for k, d in pending])
    for key, d in pending:
        out.write(f"{utc_text(d.due_at):<34} {d.name:<16} {key}\n")
    out.write(f"{len(pending)} pending deadlines of {args.name}\n")
    return 0


async def _retry(desk: ProcessDesk, args: argparse.Namespace, out: TextIO) -> int:
    from workers.roles.process.desk import retry_settled

    asked = now = await desk.retry(args.name, args.key, operator=args.operator, via="cli")
    out.write(
        f"{args.name}/{args.key}: retry asked (revision {asked.revision}); the pm role "
        "runs it at its next poll\n"
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.wait
    while args.wait and loop.time() < deadline:
        await asyncio.sleep(0.2)
        now = await desk.show(args.name, args.key)
        if retry_settled(now):
            why = f" ({now.stuck.reason}: {now.stuck.detail})" if now.stuck is not None else ""
            out.write(f"{args.name}/{args.key}: {now.status}{why}\n")
            return FAILURE if now.status == STUCK else 0
    if args.wait:
        doing = (
            "still retrying"
            if now.status == RETRYING
            else f"still sending {len(now.outbox)} commands of its outbox"
        )
        return fail(
            f"{args.name}/{args.key} is {doing} after {args.wait:g} s: is a pm role "
            "running? (`eventfleet worker --role pm`)"
        )
    return 0


@asynccontextmanager
async def _desk(settings: Settings) -> AsyncIterator[ProcessDesk]:
    """The desk on a runtime of no role (no producer, no Redis), stopped when done."""
    from workers.runtime.compose import Runtime

    async with Runtime.running(settings, roles=()) as runtime:
        if not runtime.processes:
            raise ConfigError(
                "EVENTFLEET_PROCESSES names no process manager: set it as the fleet has it "
                "(a function returning Processes([...]))."
            )
        yield runtime.process_desk
