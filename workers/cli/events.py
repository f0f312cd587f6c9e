"""``eventfleet events``: the global read from the command line, through the fleet's HTTP API
(the client library), as the token's principal: every stored event across aggregates from a
position, filtered, printed one a line; ``--follow`` goes on as events are stored.

Exit codes: 0 read to the end (or followed until Ctrl-C: 130), 1 a refusal or failure (a
position this fleet did not make, one its log cannot continue from, the fleet not answering),
2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, TextIO

import msgspec
import orjson

from workers.cli.parsing import Commands, at_least, command
from workers.cli.shell import FAILURE, USAGE, fail
from workers.runtime.settings import Settings

if TYPE_CHECKING:
    from workers.client import GlobalEvent

TOKEN_ENV = "EVENTFLEET_TOKEN"
"""The bearer token to read with: what ``eventfleet dev``'s export block sets (no setting: a
credential of the caller's, not of the fleet)."""


def add_parser(commands: Commands) -> None:
    events = command(
        commands,
        "events",
        "every stored event across aggregates from a position (the global read)",
        "Reads GET /v1/events of a running fleet as the principal of $"
        f"{TOKEN_ENV} (the read rules apply per event): every stored event across aggregates, "
        "in the log's order (each aggregate's in version order), one a line: its time, "
        "aggregate, version, type and data, or with --json a JSON line {position, event}. "
        "The last line on stderr names the position to go on from (--after). A position is "
        "opaque: pass it back as printed. Exit 0 read to the end, 1 refused or failed, 2 usage.",
    )
    events.add_argument(
        "--url",
        default=None,
        help="the fleet's API (default: http://127.0.0.1:$EVENTFLEET_HTTP_PORT, or 8080)",
    )
    events.add_argument(
        "--after",
        default=None,
        metavar="POSITION",
        help="start after this position (default: the beginning)",
    )
    events.add_argument(
        "--type",
        dest="aggregate_types",
        action="append",
        metavar="AGGREGATE_TYPE",
        help="only this aggregate type (repeatable)",
    )
    events.add_argument(
        "--event-type",
        dest="event_types",
        action="append",
        metavar="EVENT_TYPE",
        help="only this event type (repeatable)",
    )
    events.add_argument("--id-prefix", help="only aggregates whose id starts so")
    events.add_argument(
        "--limit",
        type=at_least(1),
        default=None,
        help="stop after this many events (default: all)",
    )
    events.add_argument(
        "--follow", action="store_true", help="go on as events are stored, until Ctrl-C"
    )
    events.add_argument("--json", action="store_true", help="one JSON line per event")


async def run_events(
    settings: Settings, args: argparse.Namespace, *, out: TextIO | None = None
) -> int:
    from workers.client import AsyncClient, Backoff, ClientError

    out = out or sys.stdout
    url = args.url or f"http://127.0.0.1:{settings.http_port or 8080}"
    token = os.environ.get(TOKEN_ENV) or None
    after: str = args.after or ""
    types, event_types = list(args.aggregate_types or []), list(args.event_types or [])
    prefix: str = args.id_prefix or ""
    last: GlobalEvent | None = None
    count = 0
    try:
        with _interrupting() if args.follow else contextlib.nullcontext():
            async with AsyncClient(url, token=token, retry=Backoff(attempts=3)) as client:
                read = client.subscribe_all if args.follow else client.global_events
                stream = read(
                    after, aggregate_types=types, event_types=event_types, id_prefix=prefix
                )
                try:
                    async for item in stream:
                        _print(out, item, as_json=args.json)
                        last, count = item, count + 1
                        if args.limit is not None and count >= args.limit:
                            break
                finally:
                    await stream.aclose()
    except ClientError as e:
        return fail(str(e), USAGE if isinstance(e, ValueError) else FAILURE)
    where = last.position if last is not None else after
    said = f"--after {where} goes on from here" if where else "nothing was read"
    print(f"{count} event(s); {said}", file=sys.stderr)
    return 0


@contextlib.contextmanager
def _interrupting() -> Iterator[None]:
    """Ctrl-C (SIGINT) ends a follow at once, through the loop's own signal handling: it wakes
    the loop whichever thread the signal reached. ``asyncio.run``'s handler runs only once the
    loop wakes for something else, and a quiet follow waits on its socket (up to a heartbeat)."""
    loop, task = asyncio.get_running_loop(), asyncio.current_task()
    interrupted = False

    def interrupt() -> None:
        nonlocal interrupted
        interrupted = True
        if task is not None:
            task.cancel()

    try:
        loop.add_signal_handler(signal.SIGINT, interrupt)
    except (RuntimeError, ValueError):  # not the main thread: asyncio.run's handling stands
        yield
        return
    try:
        yield
    except asyncio.CancelledError:
        if interrupted:
            raise KeyboardInterrupt from None  # the CLI's Ctrl-C: exit 130
        raise
    finally:
        loop.remove_signal_handler(signal.SIGINT)


def _print(out: TextIO, item: GlobalEvent, *, as_json: bool) -> None:
    e = item.event
    if as_json:
        line = msgspec.json.encode(item).decode()
    else:
        data = orjson.dumps(e.data).decode()
        line = f"{e.occurred_at} {e.aggregate_type} {e.aggregate_id} v{e.version} {e.type} {data}"
    out.write(line + "\n")
    out.flush()
