"""Serving one fleet process: build its Faust app with the agents and views of its roles, run,
drain."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Collection
from typing import NoReturn

from workers.retries import fleet_retry_hooks
from workers.roles.command.newfilter import keep_filter_ready
from workers.runtime.agents import register_agents
from workers.runtime.collector import collect_less
from workers.runtime.compose import Runtime
from workers.runtime.door.auth import make_authenticator
from workers.runtime.door.identity import Authenticator
from workers.runtime.fleet import EXIT_DRAIN_TIMEOUT, Fleet, HttpServer, ensure_catalog
from workers.runtime.lag import LAG_ROLE

log = logging.getLogger(__name__)


Views = Callable[[Fleet], HttpServer]
"""What a process serves over HTTP, built for its fleet: ``workers.http.register`` (the API,
the live routes and the console on the fleet's own server), handed in by the command that
serves, so the runtime imports no view."""


def build_fleet(
    runtime: Runtime,
    roles: Collection[str],
    *,
    app_id: str,
    views: Views,
    projections: Collection[str] = (),
    authenticator: Authenticator | None = None,
) -> Fleet:
    """The fleet of one process with the agents of ``roles`` and the HTTP ``views``."""
    fleet = Fleet(
        runtime, roles, app_id=app_id, projections=projections, authenticator=authenticator
    )
    register_agents(fleet)
    fleet.http = views(fleet)
    fleet.http_port = fleet.http.port
    return fleet


LOOPS_END_S = 5.0
"""How long a drain waits for the cancelled background loops to end before the stores close."""


async def serve(
    runtime: Runtime,
    roles: Collection[str],
    *,
    app_id: str,
    views: Views,
    on_started: Callable[[Fleet], Awaitable[None]] | None = None,
    projections: Collection[str] = (),
    hard_exit: bool = False,
    authenticator: Authenticator | None = None,
) -> int:
    """Run the roles until SIGTERM/SIGINT (or ``fleet.stop()``), then drain; return the exit code.

    ``hard_exit`` (the worker process): if the process is still alive shortly after the drain
    deadline, end it there, whatever a library's thread is waiting for; once drained, end it at
    once (``exit_now``). ``authenticator``:
    who may call (``eventfleet worker`` passes the one its settings require); without it, the
    one ``EVENTFLEET_AUTH`` describes, open when unset.
    """
    fleet_retry_hooks()
    try:
        if authenticator is None:
            authenticator = await make_authenticator(
                runtime.settings, runtime.secrets, required=False
            )
        if set(roles) - {LAG_ROLE}:  # the lag role reads whatever topics exist
            await ensure_catalog(runtime)
    except BaseException:
        await runtime.stop()
        raise
    fleet = build_fleet(
        runtime,
        roles,
        app_id=app_id,
        views=views,
        projections=projections,
        authenticator=authenticator,
    )
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _stop_on, fleet, signum)
    fleet.health.start()
    assert fleet.http is not None
    try:
        await fleet.http.start()  # probes answer while the app starts (not ready yet)
    except BaseException:
        await runtime.stop()
        raise
    if not runtime.settings.http_port:
        log.info(
            "EVENTFLEET_HTTP_PORT=0: serving HTTP on %s:%d",
            runtime.settings.http_host,
            fleet.http_port,
        )
    background: list[asyncio.Task[None]] = []
    if await _start_unless_stopped(fleet):
        if hard_exit:
            collect_less(runtime.settings.gc_threshold)
        background = _start_loops(fleet, runtime)
        if fleet.lag is not None:
            fleet.lag.start()
        fleet.started = True
        if on_started is not None:
            await on_started(fleet)
    else:
        log.warning("stopped while starting: no work was taken, nothing is committed")
    await fleet.stopped.wait()
    return await _drain(fleet, background, hard_exit=hard_exit)


async def _drain(fleet: Fleet, background: list[asyncio.Task[None]], *, hard_exit: bool) -> int:
    """Stop the loops beside the roles, drain the fleet, say the exit code (and, for the worker
    process, end it: ``hard_exit``)."""
    log.info("draining %s", ", ".join(sorted(fleet.roles)))
    began = time.monotonic()
    drain_s = fleet.runtime.settings.drain_timeout_s
    watchdog = Watchdog(drain_s + WATCHDOG_GRACE_S) if hard_exit else None
    await end_loops(background)  # before the stores close under them
    await fleet.drain()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(signum)
    if fleet.exit_code == 0 and fleet.drain_timed_out:
        fleet.exit_code = EXIT_DRAIN_TIMEOUT
    if watchdog is not None:
        watchdog.exit_code = fleet.exit_code
        exit_now(fleet.exit_code, drained_s=time.monotonic() - began)
    return fleet.exit_code


def _start_loops(fleet: Fleet, runtime: Runtime) -> list[asyncio.Task[None]]:
    """The loops beside the roles, started; cancelled when the fleet drains."""
    background: list[asyncio.Task[None]] = []
    door = "commands" in fleet.roles or ("pm" in fleet.roles and bool(runtime.processes))
    if door:  # the command door runs here (process managers send through it too)
        # Sync mode and storage writers store before they publish: repair what Kafka missed.
        relay_age_s = runtime.settings.kafka_timeout_ms / 1000 * 1.5 + 1
        relay = runtime.outbox.run(older_than_s=relay_age_s)
        background.append(asyncio.create_task(relay, name="the outbox relay"))
        if "scans" in runtime.events.capabilities:  # else every new aggregate reads its head
            filter_kept = keep_filter_ready(runtime.marker, runtime.events, runtime.domains)
            background.append(asyncio.create_task(filter_kept, name="the new-aggregate filter"))
    if fleet.consumes:  # an agent that caught up commits at once, not at the next interval
        commits = asyncio.create_task(fleet.commits.run(), name="the caught-up commits")
        commits.add_done_callback(lambda task: _fatal_unless_cancelled(fleet, "commits", task))
        background.append(commits)
    if fleet.audit_loop is not None:
        audits = fleet.audit_loop.run()
        background.append(asyncio.create_task(audits, name="the audit loop"))
    if "pm" in fleet.roles and runtime.processes:  # deadlines, retries, unsent commands
        polls = asyncio.create_task(runtime.polls.run(), name="the process managers' polls")
        polls.add_done_callback(lambda task: _fatal_unless_cancelled(fleet, "pm polls", task))
        background.append(polls)
    return background


async def end_loops(
    background: list[asyncio.Task[None]], *, within_s: float = LOOPS_END_S, again_s: float = 0.5
) -> None:
    """Cancel the loops beside the roles and wait for them to end, at most ``within_s``; a loop
    that holds its cancel longer is named in the log with the await that holds it, and the stop
    goes on without it.

    A loop still running after ``again_s`` is cancelled again: a library may swallow a cancel.
    Python 3.11's ``asyncio.wait_for`` returns the result of an operation that completed as the
    cancel came (python/cpython#86296), and pymongo reads its sockets through it: the process
    managers' polls then slept on as if never told, and a stop waited out the whole bound."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    holding = set(background)
    while holding and (left := deadline - loop.time()) > 0:
        for task in holding:
            task.cancel()
        _, holding = await asyncio.wait(holding, timeout=min(again_s, left))
    for task in holding:
        log.warning(
            "%s did not end within %g s of its cancel, at %s",
            task.get_name(),
            within_s,
            awaiting(task),
        )


def awaiting(task: asyncio.Task[None]) -> str:
    """Where a suspended ``task`` waits: each coroutine of its await chain, outermost first."""
    frames: list[str] = []
    coro: object = task.get_coro()
    while (frame := getattr(coro, "cr_frame", None)) is not None:
        frames.append(f"{frame.f_code.co_qualname} ({frame.f_code.co_filename}:{frame.f_lineno})")
        coro = getattr(coro, "cr_await", None)
    return " > ".join(frames) or "an unknown await"


def _fatal_unless_cancelled(fleet: Fleet, what: str, task: asyncio.Task[None]) -> None:
    """A background loop that ended by an error stops the process (a restart runs it again),
    rather than leaving it serving without the loop."""
    if task.cancelled():
        return
    error = task.exception()  # retrieved in any case: asyncio would log it as never retrieved
    if error is None:
        return
    if fleet.stopped.is_set():  # draining: the stores close under it, and it is not needed
        log.debug("%s ended while the process stops: %r", what, error)
        return
    fleet.fatal(what, error)


async def _start_unless_stopped(fleet: Fleet, *, warn_every_s: float = 60.0) -> bool:
    """Start the Faust app; False when a stop (SIGTERM) came first.

    A start can wait as long as the brokers, the group's join or a table's recovery take (four
    appenders joining a group the embedded broker left without a leader waited for ever); a
    stop must not wait for it: it leaves within its drain timeout like any other. A start
    still under way says so in the log every ``warn_every_s``: readyz alone does not say why.
    """
    starting = asyncio.ensure_future(fleet.app.start())
    stopping = asyncio.ensure_future(fleet.stopped.wait())
    began = time.monotonic()
    try:
        while not (starting.done() or stopping.done()):
            await asyncio.wait(
                {starting, stopping}, timeout=warn_every_s, return_when=asyncio.FIRST_COMPLETED
            )
            if not (starting.done() or stopping.done()):
                log.warning(
                    "still starting after %.0f s: waiting for the brokers, the consumer group's "
                    "first assignment or a table's recovery (on the embedded broker, a group "
                    "whose leader left while it re-formed never assigns: see README, Known "
                    "limitations)",
                    time.monotonic() - began,
                )
    finally:
        stopping.cancel()
    if starting.done():
        starting.result()  # a start that failed fails the process, as before
        return True
    # not awaited: a start stuck on a frozen broker may not end; the drain is bounded
    starting.cancel()
    return False


def exit_now(code: int, *, drained_s: float) -> NoReturn:
    """End the worker process as soon as it has drained: its clients are stopped and what it
    decided is committed, so nothing in the interpreter's own teardown matters, and that
    teardown of a worker's heap took 2-3 s with both cores busy (measured after the drain of a
    snapshotter and a forwarder), past the drain deadline and out of the watchdog's reach."""
    log.info("drained in %.1fs; exiting with %d", drained_s, code)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


EXIT_INTERRUPTED = 130
"""Ctrl-C (SIGINT): the shell's code for "ended by the user", after the same drain as SIGTERM."""


def _stop_on(fleet: Fleet, signum: int) -> None:
    if signum == signal.SIGINT and fleet.exit_code == 0:
        fleet.exit_code = EXIT_INTERRUPTED
    fleet.stop()


WATCHDOG_GRACE_S = 1.0
"""After the drain deadline, this long for the interpreter's own shutdown before a hard exit."""


class Watchdog(threading.Thread):
    """A daemon thread that ends the process if it is still alive ``seconds`` from now.

    The drain is bounded, but a client library's threads or cleanup (a consumer thread
    waiting on a frozen broker, a close that never returns) could still hold the process.
    Nothing uncommitted is lost by exiting here: the offset ledger never let a commit pass it.
    """

    def __init__(self, seconds: float) -> None:
        super().__init__(name="drain-watchdog", daemon=True)
        self._seconds = seconds
        self.exit_code = EXIT_DRAIN_TIMEOUT
        self.start()

    def run(self) -> None:
        time.sleep(self._seconds)
        log.error("still running %gs after SIGTERM: exiting now", self._seconds)
        logging.shutdown()
        os._exit(self.exit_code or EXIT_DRAIN_TIMEOUT)
