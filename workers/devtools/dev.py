"""``eventfleet dev``: the embedded stack plus every role in one process, and what a newcomer needs.

dev owns what it uses: its own Redis unless told to use one (``--redis`` or
EVENTFLEET_REDIS_URL), one temporary directory per run for the services' data and Faust's,
removed at exit, and, in a Redis it was lent while its store was its own, no key left behind.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, nullcontext, suppress
from pathlib import Path

from topics.errors import ConfigError
from workers.adapters.redis import connect_redis
from workers.devtools.banner import banner
from workers.devtools.demo_logs import logs_aside
from workers.devtools.dev_identity import DEV_PRINCIPAL, dev_identity
from workers.devtools.dev_keys import dev_master_key
from workers.devtools.dev_port import http_port
from workers.devtools.dev_runs import RUN_PREFIX
from workers.devtools.embedded import EmbeddedStack, StackStartError
from workers.devtools.embedded.children import SAFETY_NET
from workers.http import register
from workers.runtime.compose import Runtime, all_roles
from workers.runtime.fleet import Fleet
from workers.runtime.loading import load_domains, load_processes
from workers.runtime.serve import serve
from workers.runtime.settings import Settings
from workers.secrets import mask_url

log = logging.getLogger(__name__)
EXAMPLE_DOMAINS = "workers.examples.domains:default_domains"
"""What dev (and the bench) run when EVENTFLEET_DOMAINS is unset: the examples, reached by
name so that no framework module imports them; a worker never guesses."""
EXAMPLE_PROCESSES = "workers.examples.domains:default_processes"
DEMO_PROCESSES = "workers.examples.domains:demo_processes"
"""With the example domains, dev runs their process manager (``--demo``: with a payment deadline
of seconds, so the demo sees unpaid orders cancelled)."""


def dev_settings(
    settings: Settings, *, port: int, read_only: bool = False, demo: bool = False
) -> Settings:
    """Latency-friendly defaults for the embedded broker (the environment still wins), on ``port``.

    dev is for trying things: the console's operator actions (dead-letter replay, erasure) are on
    unless ``--read-only`` (or EVENTFLEET_CONSOLE_ACTIONS) says otherwise; the flag wins over both.
    With the example domains (EVENTFLEET_DOMAINS unset) it runs their process manager too.
    """
    if "domains" not in settings.explicit:
        settings = settings.with_defaults(
            processes=DEMO_PROCESSES if demo else EXAMPLE_PROCESSES, process_poll_ms=200
        )
    settings = settings.model_copy(update={"http_port": port}).with_defaults(
        kafka_fetch_max_wait_ms=10,
        kafka_session_timeout_ms=3000,
        partitions=4,
        topics_auto_create=True,  # the embedded broker starts empty
        console_actions=True,
        domains=EXAMPLE_DOMAINS,
    )
    return settings.model_copy(update={"console_actions": False}) if read_only else settings


def embedded_stack(settings: Settings, *, redis_url: str | None = None) -> EmbeddedStack:
    """The stack: given URLs used as they are, the rest started, Redis included (never borrowed)."""
    given = settings.explicit
    redis = redis_url or (settings.redis_url if "redis_url" in given else None)
    return EmbeddedStack(
        kafka_url=settings.kafka_url if "kafka_url" in given else None,
        mongo_url=settings.mongo_url if "mongo_url" in given else None,
        redis_url=redis,
        start_redis=redis is None,
    )


def lent_redis(settings: Settings, redis_url: str | None) -> str | None:
    """The Redis URL dev was told to use, checked like EVENTFLEET_REDIS_URL; None: start its own."""
    if redis_url is None:
        return settings.redis_url if "redis_url" in settings.explicit else None
    try:
        return Settings.from_env({"EVENTFLEET_REDIS_URL": redis_url}).redis_url
    except ConfigError as e:
        raise ConfigError(f"--redis: {e}") from None


async def check_lent_redis(settings: Settings, url: str) -> None:
    """A lent Redis must answer now: otherwise dev would run with every command refused."""
    redis = connect_redis(url, timeout_ms=settings.redis_timeout_ms)
    try:
        async with asyncio.timeout(settings.redis_timeout_ms / 1000 + 1):
            await redis.ping()
    except Exception as e:
        raise StackStartError(
            f"the Redis at {mask_url(url)} (--redis or EVENTFLEET_REDIS_URL) did not answer "
            f"PING ({type(e).__name__}); start it, or leave both unset and dev starts its own"
        ) from None
    finally:
        with suppress(Exception):
            await redis.aclose()


@asynccontextmanager
async def run_directory() -> AsyncIterator[Path]:
    """One temporary directory for this run; the system temp dir points into it meanwhile.

    Faust's data directory is ``<temp dir>/eventfleet-faust/<app>`` (workers.runtime.fleet):
    pointing the temp dir here makes it, and all the stack writes, go when the run ends.
    """
    path = Path(tempfile.mkdtemp(prefix=RUN_PREFIX))
    SAFETY_NET.dirs.add(path)
    previous = tempfile.tempdir
    tempfile.tempdir = str(path)
    try:
        yield path
    finally:
        tempfile.tempdir = previous
        shutil.rmtree(path, ignore_errors=True)
        SAFETY_NET.dirs.discard(path)


def say(text: str) -> None:
    """A step of dev's start on stderr, so the first seconds are not silent."""
    print(f"eventfleet dev: {text}", file=sys.stderr, flush=True)


@contextmanager
def _demo_logs() -> Iterator[None]:
    """The roles' logs in a file (errors also here), so the demo's progress has the terminal."""
    with logs_aside() as logs:
        say(f"the demo's logs go to {logs} (errors also here), so its progress has the terminal")
        try:
            yield
        finally:
            say(f"this run's logs: {logs}")


async def dev(
    settings: Settings,
    *,
    port: int | None = None,
    redis_url: str | None = None,
    demo: bool = False,
    demo_scale: float = 1.0,
    read_only: bool = False,
) -> int:
    """The stack and every role until Ctrl-C; with ``demo``, the demo's workload, its verdict and
    the exit, its logs in a file (the terminal shows the progress, not the roles' INFO lines)."""
    with _demo_logs() if demo else nullcontext():
        lent = lent_redis(settings, redis_url)
        settings = dev_settings(
            settings, port=http_port(settings, port), read_only=read_only, demo=demo
        )
        domains = load_domains(settings.domains)  # a bad domain set fails before anything starts
        processes = load_processes(settings.processes, domains)
        if lent is not None:
            await check_lent_redis(settings, lent)
            settings = settings.model_copy(update={"redis_url": lent})
        async with run_directory() as directory:
            settings = dev_master_key(directory, settings)  # personal fields are sealed in dev too
            identity = dev_identity(directory, settings)
            if identity is not None:  # the door is shut in dev too; the banner prints a token
                settings = identity.settings(settings)
            stack = embedded_stack(settings, redis_url=lent)
            try:
                say("starting the services on loopback (Kafka: Tansu, MongoDB: SecantusDB, Redis)")
                urls = await stack.start()
                say("services up; starting every role (the banner follows once they run)")
                services = {
                    "kafka_url": urls.kafka_url,
                    "mongo_url": urls.mongo_url,
                    "redis_url": urls.redis_url,
                }
                settings = settings.model_copy(update=services).with_defaults(
                    kafka_idempotence="kafka" not in stack.started and settings.kafka_idempotence
                )
                runtime = await Runtime.start(
                    settings, roles=all_roles(settings), domains=domains, processes=processes
                )
                forget = await _keys_to_forget(runtime, stack)
                outcome: dict[str, str] = {}

                async def started(fleet: Fleet) -> None:
                    users = identity.users() if identity is not None else ()
                    token = next((u.token for u in users if u.user.name == DEV_PRINCIPAL), None)
                    shown = banner(settings, domains, stack.started, token, users)
                    print(shown, file=sys.stdout, flush=True)
                    if demo:
                        token_for = identity.token if identity is not None else None
                        fleet.spawn(_demo_then_stop(fleet, demo_scale, outcome, token_for))

                try:
                    code = await serve(
                        runtime,
                        all_roles(settings),
                        app_id=f"{settings.group_id}-dev",
                        views=register,
                        on_started=started,
                    )
                finally:
                    if forget is not None:
                        await _delete_keys(settings, forget)
            finally:
                await stack.stop()
        if "summary" in outcome:  # after every shutdown line: the verdict is the last line
            print(outcome["summary"], flush=True)
        return code


async def _keys_to_forget(runtime: Runtime, stack: EmbeddedStack) -> str | None:
    """The key prefix to delete at exit: marks in a lent Redis of a store that dies with us."""
    if "redis" in stack.started or "mongo" not in stack.started:
        return None  # our own Redis dies with the run; a lasting store keeps its marks valid
    return f"{runtime.settings.topic_prefix}{await runtime.stores.store_id()}:"


async def _delete_keys(settings: Settings, prefix: str) -> None:
    try:
        await delete_keys(settings, prefix)
    except Exception as e:  # cleanup must not hide the run's own outcome
        print(
            f"eventfleet: error: could not delete {prefix}* from the Redis: {e!r}", file=sys.stderr
        )


async def delete_keys(settings: Settings, prefix: str) -> int:
    """Delete every key under ``prefix`` from the settings' Redis; how many there were."""
    redis = connect_redis(settings.redis_url, timeout_ms=settings.redis_timeout_ms)
    try:
        keys = [key async for key in redis.scan_iter(match=f"{prefix}*", count=1000)]
        for i in range(0, len(keys), 500):
            await redis.unlink(*keys[i : i + 500])
        return len(keys)
    finally:
        with suppress(Exception):
            await redis.aclose()


DEMO = "workers.examples.demo.run:run_demo"
"""What ``--demo`` runs: the example domains' workload, reached by its name as the default
``EVENTFLEET_DOMAINS`` is, so no framework module imports the examples."""


async def _demo_then_stop(
    fleet: Fleet,
    scale: float,
    outcome: dict[str, str],
    token_for: Callable[[str], str] | None = None,
) -> None:
    module, _, name = DEMO.partition(":")
    run_demo = getattr(importlib.import_module(module), name)
    try:
        ok, outcome["summary"] = await run_demo(fleet, scale=scale, token_for=token_for)
    except Exception:
        log.exception("the demo failed")
        ok = False
    # The drain's INFO lines (ours, Faust's, aiokafka's) would follow the verdict otherwise.
    logging.getLogger().setLevel(logging.WARNING)
    for name in ("faust", "mode", "aiokafka", "workers", "eventfleet"):
        logging.getLogger(name).setLevel(logging.WARNING)
    fleet.exit_code = 0 if ok else 1
    fleet.stop()
