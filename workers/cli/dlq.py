"""``eventfleet dlq list|parked|replay|skip``: the dead-letter topic, parked aggregates with their
queues, re-submitting a fixed entry, and skipping one (a parked head: the rest is released).

The same desk as the console's: a replay goes through the command path (the store still
judges it), is idempotent per dead letter, and is written to the audit trail. Exit codes:
0 done, 1 failure (not found, refused, cancelled, a service down), 2 usage.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, TextIO

import orjson

from topics.errors import EventfleetError, InvalidInput
from topics.jsonvalue import JsonObject
from workers.cli.parsing import Commands, command
from workers.cli.shell import FAILURE, USAGE, confirmed, fail, operator_name, print_json
from workers.runtime.settings import Settings

if TYPE_CHECKING:
    from workers.http.console.desk import DeadLetterDesk
    from workers.roles.ops.dlq_replay import DeadLetterEntry


def add_parser(commands: Commands) -> None:
    """Register ``dlq`` on the top-level subparsers."""
    dlq = command(
        commands,
        "dlq",
        "list dead letters, re-submit a fixed one",
        "The dead-letter topic: list its entries with their reasons, and re-submit "
        "a fixed entry through the command path (the store still judges it; audited).",
    )
    actions = dlq.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    listing = command(
        actions,
        "list",
        "every entry of the dead-letter topic, oldest first",
        "Every entry of the dead-letter topic, oldest first, with its reason.",
    )
    listing.add_argument("--reason", help="only entries with this reason")
    listing.add_argument("--json", action="store_true", help="one JSON array of entries")
    replay = command(
        actions,
        "replay",
        "re-submit one entry through the command path (asks to confirm; audited)",
        "Re-submit one dead-lettered entry, fixed, through the command path. Shows "
        "what will be sent and asks to confirm (--yes skips); replaying twice stores it once.",
    )
    replay.add_argument("entry", help="<partition>/<offset> in the dead-letter topic (see list)")
    replay.add_argument(
        "--submission",
        help='the fixed command as JSON: {"aggregate_type", "aggregate_id", "type", "data"} '
        "(default: the dead-lettered event as it was)",
    )
    replay.add_argument("--data", help="only replace the event's data (a JSON object)")
    replay.add_argument("--operator", help="who replays, for the audit trail (default: $USER)")
    replay.add_argument("--yes", action="store_true", help="do not ask to confirm")
    parked = command(
        actions,
        "parked",
        "parked aggregates, each with its queue in order",
        "Aggregates the appender parked: the head (the event that could not be "
        "stored) and the events waiting behind it, in order. Replay or skip the head to "
        "release the rest (each is judged again).",
    )
    parked.add_argument("--json", action="store_true", help="one JSON array of aggregates")
    skip = command(
        actions,
        "skip",
        "decide an entry needs nothing (a parked head: the rest is released; audited)",
        "Record that a dead-lettered entry needs nothing. Skipping the head of a "
        "parked aggregate releases the rest of its queue, each event judged again in order; "
        "an entry behind its head is refused.",
    )
    skip.add_argument("entry", help="<partition>/<offset> in the dead-letter topic (see list)")
    skip.add_argument("--operator", help="who skips, for the audit trail (default: $USER)")


async def run_dlq(settings: Settings, args: argparse.Namespace) -> int:
    if settings.log_level.lower() != "debug":
        # A broker that cannot be reached is said once, in our one-line error, not logged too.
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        if args.dlq_command == "list":
            return await run_list(settings, args)
        if args.dlq_command == "parked":
            return await run_parked(settings, args)
        try:
            operator = _operator(args)
        except InvalidInput as e:
            return fail(str(e), USAGE)
        if args.dlq_command == "skip":
            return await run_skip(settings, args, operator)
        return await run_replay(settings, args, operator)
    except EventfleetError as e:
        return fail(str(e))


async def run_list(settings: Settings, args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    async with _desk(settings) as desk:  # reads only: no producer, no Redis
        entries = await desk.entries()
    shown = [e for e in entries if args.reason is None or e.reason == args.reason]
    if args.json:
        return print_json(out, [e.as_dict() for e in shown])
    for e in shown:
        what = f"{e.event.aggregate_type} {e.event.aggregate_id} {e.event.type}" if e.event else "-"
        out.write(f"{e.position:<10} {e.reason:<28} {what}  {e.detail[:80]}\n".rstrip() + "\n")
    out.write(f"{len(shown)} dead letters in {settings.topic_prefix}events.dlq\n")
    return 0


async def run_parked(
    settings: Settings, args: argparse.Namespace, out: TextIO | None = None
) -> int:
    out = out or sys.stdout
    async with _desk(settings) as desk:
        parked = await desk.parked()
    shown: list[JsonObject] = [
        {
            "aggregate": head.key,
            "reason": head.reason,
            "detail": head.detail,
            "resolution": head.resolution,
            "by": head.by,
            "last_seq": last,
            "queue": [
                {"seq": e.seq, "source": e.source, "event_id": e.event_id, "reason": e.reason}
                for e in queue
            ],
        }
        for head, last, queue in parked
    ]
    if args.json:
        return print_json(out, shown)
    for aggregate in shown:
        out.write(
            f"{aggregate['aggregate']}  head: {aggregate['reason']}"
            f"{'  (' + str(aggregate['resolution']) + ')' if aggregate['resolution'] else ''}"
            "\n"
        )
        for e in aggregate["queue"]:
            out.write(f"  #{e['seq']:<4} {e['source']:<32} {e['reason']}\n")
    out.write(f"{len(shown)} parked aggregates\n")
    return 0


async def run_skip(
    settings: Settings, args: argparse.Namespace, operator: str, out: TextIO | None = None
) -> int:
    out = out or sys.stdout
    async with _desk(settings) as desk:
        action = await desk.skip(await desk.entry(args.entry), operator=operator)
    released = action.result.get("releases")
    out.write(f"skipped {args.entry}" + (f"; {released} is released" if released else "") + "\n")
    out.write(f"audited as {action.id}\n")
    return 0


def _submission(entry: DeadLetterEntry, args: argparse.Namespace, max_bytes: int) -> JsonObject:
    from workers.roles.ops.dlq_replay import draft, parse_submission

    if args.submission is not None and args.data is not None:
        raise InvalidInput("give --submission or --data, not both.")
    if args.submission is not None:
        return parse_submission(args.submission, max_bytes=max_bytes)
    submission = draft(entry)
    if args.data is not None:
        try:
            data = orjson.loads(args.data)
        except orjson.JSONDecodeError as e:
            raise InvalidInput(f"--data is not valid JSON: {e}.") from e
        submission["data"] = data
    if entry.event is None and args.submission is None:
        raise InvalidInput(
            f"dead letter {entry.position} holds no event ({entry.reason}); give the whole "
            "fixed command with --submission."
        )
    return parse_submission(orjson.dumps(submission), max_bytes=max_bytes)


async def run_replay(
    settings: Settings,
    args: argparse.Namespace,
    operator: str,
    *,
    out: TextIO | None = None,
    ask: Callable[[str], str] = input,
) -> int:
    out = out or sys.stdout
    async with _desk(settings, roles=("commands",)) as desk:
        entry = await desk.entry(args.entry)
        try:
            submission = _submission(entry, args, settings.max_body_bytes)
        except InvalidInput as e:
            return fail(str(e), USAGE)
        fixed = desk.replayer().command(entry, submission)
        out.write(
            f"re-submit dead letter {entry.position} ({entry.reason}) as {operator}:\n"
            f"  POST /v1/{fixed.aggregate_type}/{fixed.aggregate_id}/events "
            + orjson.dumps(
                {"type": fixed.type, "data": fixed.data, "command_id": fixed.command_id}
            ).decode()
            + "\n"
        )
        if not args.yes and not confirmed(ask, "re-submit? [y/N] "):
            return fail("not confirmed; nothing was re-submitted.")
        action = await desk.replay(entry, submission, operator=operator)
        out.write(f"{action.status} {orjson.dumps(action.result).decode()}\n")
        out.write(f"audited as {action.id}\n")
        return 0 if action.status < 300 else FAILURE


@asynccontextmanager
async def _desk(
    settings: Settings, *, roles: tuple[str, ...] = ()
) -> AsyncIterator[DeadLetterDesk]:
    """The console's dead-letter desk on a runtime of ``roles`` (none: no producer, no Redis),
    stopped when the command is done."""
    from workers.http.console.desk import DeadLetterDesk
    from workers.runtime.compose import Runtime

    async with Runtime.running(settings, roles=roles) as runtime:
        yield DeadLetterDesk(runtime, via="cli")


def _operator(args: argparse.Namespace) -> str:
    """Usage errors first, before any connection: the entry's position, then who acts."""
    from workers.roles.deadletter import check_operator
    from workers.roles.ops.dlq_replay import parse_position

    parse_position(args.entry)
    return check_operator(operator_name(args.operator, "replays"))
