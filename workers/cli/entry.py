"""The ``eventfleet`` command: dev stack, workers, topics, queries and benchmarks.

Every failure ends in one line on stderr, ``eventfleet: error: …``, that names the fix:
exit 2 for a usage or configuration mistake, 1 for a failure, 130 on Ctrl-C. A traceback
is shown only with ``EVENTFLEET_LOG_LEVEL=debug``.
"""

from __future__ import annotations

import argparse
import errno
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from topics.errors import (
    ConfigError,
    EventfleetError,
    Unavailable,
    UnknownAggregateType,
    UnknownProjection,
)
from workers.cli.args import parser
from workers.cli.commands import HANDLERS, UsageError
from workers.cli.shell import FAILURE, USAGE, fail
from workers.runtime.loops import run
from workers.runtime.settings import Settings, env_name

__all__ = ["main", "parser"]

INTERRUPTED_EXIT = 130
SERVING = ("dev", "worker")
"""The commands that serve until stopped: they run on ``EVENTFLEET_EVENT_LOOP`` and log as a
service; the others are one-shot tools."""
_NOISY = ("faust", "mode", "aiokafka", "aiohttp", "pymongo", "kafka")


def configure_logging(settings: Settings, command: str) -> None:
    """Services log at EVENTFLEET_LOG_LEVEL; one-shot commands only their result and one
    error line, unless EVENTFLEET_LOG_LEVEL is set (the drivers' retries would bury it)."""
    from workers.logs import JsonFormatter, TextFormatter

    level = settings.log_level.lower()
    tool = command not in SERVING and "log_level" not in settings.explicit
    logging.basicConfig(level="ERROR" if tool else level.upper(), stream=sys.stderr)
    # One line a record whatever a value from outside holds (both escape control characters);
    # JSON: one object a line, naming its trace.
    for handler in logging.getLogger().handlers:
        handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    quiet = "CRITICAL" if tool else "WARNING" if level != "debug" else "DEBUG"
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(quiet)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)  # --help and a usage error end here, before any import below
    from workers import tracing

    try:
        settings = Settings.from_env()
    except EventfleetError as e:
        return fail(str(e), USAGE)
    configure_logging(settings, args.command)
    # SIGTERM stops a one-shot command (bench, replay, …) as Ctrl-C does: its cleanup runs and
    # what it started (an embedded stack, worker processes) stops with it. The serving
    # commands install their own handler (drain, then stop) on the loop, which replaces this.
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler) if main_thread else None
    try:
        if args.command in SERVING:
            role = getattr(args, "role", None) or args.command
            tracing.configure(f"eventfleet-{role}", switch=settings.tracing)
        from workers.devtools.dev_runs import check_dev_run

        check_dev_run(settings)  # a shell still holding an ended dev run's export block
        loop = settings.event_loop if args.command in SERVING else "asyncio"
        return run(HANDLERS[args.command](settings, args), loop=loop)
    except KeyboardInterrupt:
        return INTERRUPTED_EXIT
    except Exception as e:
        if settings.log_level == "debug":
            logging.getLogger("eventfleet").exception("the command failed")
        # A configuration mistake (EVENTFLEET_DOMAINS, a TLS file) is the caller's to fix: 2.
        return fail(where(explain(e, args), e, settings), USAGE if is_usage(e) else FAILURE)
    finally:
        tracing.shutdown()  # the spans still buffered leave (nothing when tracing is off)
        if previous is not None:  # main() called in a process that keeps running (tests)
            signal.signal(signal.SIGTERM, previous)


SERVICE_SETTINGS = {"store": "mongo_url", "marker": "redis_url", "stream": "kafka_url"}
"""The setting that names each service, for a connection error to point at."""


def where(message: str, e: Exception, settings: Settings) -> str:
    """A service that did not answer is named by its (masked) URL and the setting to check."""
    from workers.runtime.failures import ours

    e = ours(e)
    name = SERVICE_SETTINGS.get(e.service) if isinstance(e, Unavailable) else None
    if name is None:
        return message
    url = settings.masked(name)
    if url in message:
        return message
    return (
        f"{message.rstrip('.')} at {url}; check that {env_name(name)} names a running service "
        "reachable from here (EVENTFLEET_LOG_LEVEL=debug shows the driver's error)."
    )


def is_usage(e: Exception) -> bool:
    """A mistake in the command line or the configuration (exit 2), not a failure (exit 1)."""
    return isinstance(e, ConfigError | UsageError | UnknownAggregateType | UnknownProjection)


def explain(e: Exception, args: argparse.Namespace) -> str:
    """One sentence for an error that reached the top, naming the fix."""
    from workers.runtime.failures import ours

    e = ours(e)  # a driver's error the adapters did not see (a tool's own client)
    if isinstance(e, EventfleetError):
        return str(e)
    if isinstance(e, OSError) and e.errno == errno.EADDRINUSE:
        flag = (
            "--port N (or --port 0 for any free port)"
            if args.command == "dev"
            else ("EVENTFLEET_HTTP_PORT=N (or 0 for any free port)")
        )
        return f"a port this command listens on is already in use ({e.strerror}); pass {flag}"
    if isinstance(e, OSError) and e.filename is not None:  # a file, not a service
        return f"{e.filename}: {e.strerror}; check the path, and that it may be used from here"
    if isinstance(e, OSError | TimeoutError):
        return f"{type(e).__name__}: {e}; check that the services EVENTFLEET_* name are up"
    return (
        f"unexpected {type(e).__name__}: {e}; this is a bug: rerun with "
        "EVENTFLEET_LOG_LEVEL=debug for the traceback and report it"
    )
