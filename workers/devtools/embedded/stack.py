"""The embedded stack: Kafka, MongoDB and Redis on loopback, each given by URL or started here."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

from workers.devtools.embedded.binaries import (
    redis_server_argv,
    redis_server_bin,
    secantusd_argv,
    secantusd_bin,
    tansu_argv,
    tansu_bin,
)
from workers.devtools.embedded.children import SAFETY_NET
from workers.devtools.embedded.common import HOST, LABELS, SYSTEM_REDIS_URL, PortInUse
from workers.devtools.embedded.probes import (
    free_port,
    loopback_mongo_url,
    probe_kafka,
    probe_mongo,
    probe_redis,
    probe_redis_url,
)
from workers.devtools.embedded.process import ServiceProcess

_PORT_ATTEMPTS = 3
_SYSTEM_REDIS_TIMEOUT_S = 0.5


@dataclass(frozen=True, slots=True)
class StackUrls:
    """Where clients reach each part of the stack."""

    kafka_url: str
    mongo_url: str
    redis_url: str


class EmbeddedStack:
    """Kafka, MongoDB and Redis on loopback: given URLs are used as they are, the rest started."""

    def __init__(
        self,
        *,
        kafka_url: str | None = None,
        mongo_url: str | None = None,
        redis_url: str | None = None,
        workdir: Path | None = None,
        redis_db: int | None = None,
        start_redis: bool = False,
        ports: Mapping[str, int] | None = None,
        ready_timeout_s: float = 30.0,
    ) -> None:
        """``start_redis`` starts a redis-server even when a system Redis answers, so a test
        can stop it; ``ports`` fixes the port of a started part (default: a free one)."""
        self._given = {"kafka": kafka_url, "mongo": mongo_url, "redis": redis_url}
        self._workdir = workdir
        self._redis_db = redis_db
        self._start_redis = start_redis
        self._ports = dict(ports or {})
        if unknown := sorted(set(self._ports) - set(LABELS)):
            raise ValueError(f"ports names unknown parts {unknown}; the parts are {list(LABELS)}")
        self._ready_timeout_s = ready_timeout_s
        self._processes: dict[str, ServiceProcess] = {}
        self._urls: StackUrls | None = None
        self._tmpdir: Path | None = None

    @property
    def urls(self) -> StackUrls:
        if self._urls is None:
            raise RuntimeError("the embedded stack is not running; await start() first")
        return self._urls

    @property
    def started(self) -> tuple[str, ...]:
        """Names of the parts this stack started (and will stop), in start order."""
        return tuple(self._processes)

    def process(self, name: str) -> ServiceProcess:
        """Return the process of a part this stack started, to stop, pause or kill it."""
        if name not in self._processes:
            raise LookupError(
                f"{name} was not started by this stack (it uses {self._given.get(name) or name!r});"
                " pass start_redis=True, or leave its URL unset, to get a process you may stop."
            )
        return self._processes[name]

    async def start(self) -> StackUrls:
        """Start every part without a given URL and return once all of them answer."""
        if self._urls is not None:
            return self._urls
        try:
            workdir = self._make_workdir()
            kafka = self._given["kafka"] or await self._start_kafka(workdir)
            mongo = self._given["mongo"] or await self._start_mongo(workdir)
            redis = self._given["redis"] or await self._system_redis()
            redis = redis or await self._start_redis_server(workdir)
        except BaseException:
            self._kill_all()  # a failed, interrupted or cancelled start leaves nothing behind
            raise
        self._urls = StackUrls(kafka_url=kafka, mongo_url=mongo, redis_url=redis)
        return self._urls

    async def stop(self) -> None:
        """Stop what this stack started and remove its temporary directory."""
        try:
            # Data in our own temporary directory dies with it, so a graceful stop buys nothing
            # there; and secantusd takes 2 s to stop gracefully (its accept thread times out).
            if self._tmpdir is None:
                for process in reversed(self._processes.values()):
                    await process.stop()
        finally:
            self._kill_all()

    async def __aenter__(self) -> EmbeddedStack:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _make_workdir(self) -> Path:
        if self._workdir is not None:
            self._workdir.mkdir(parents=True, exist_ok=True)
            return self._workdir
        self._tmpdir = Path(tempfile.mkdtemp(prefix="eventfleet-stack-"))
        SAFETY_NET.dirs.add(self._tmpdir)
        return self._tmpdir

    def _kill_all(self) -> None:
        for process in self._processes.values():
            process.kill()
        self._processes.clear()
        self._urls = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            SAFETY_NET.dirs.discard(self._tmpdir)
            self._tmpdir = None

    async def _run(
        self,
        name: str,
        argv: Callable[[int], list[str]],
        workdir: Path,
        probe: Callable[[int], Awaitable[None]],
    ) -> int:
        fixed = self._ports.get(name)
        for attempt in range(1 if fixed else _PORT_ATTEMPTS):
            port = fixed or free_port()
            process = ServiceProcess(
                name,
                argv(port),
                port=port,
                workdir=workdir,
                probe=partial(probe, port),
                ready_timeout_s=self._ready_timeout_s,
            )
            try:
                await process.start()
            except PortInUse:
                # A free port we picked can be taken before the child binds it: pick another.
                if fixed or attempt == _PORT_ATTEMPTS - 1:
                    raise
                continue
            self._processes[name] = process
            return port
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _start_kafka(self, workdir: Path) -> str:
        argv = partial(tansu_argv, tansu_bin())
        return f"kafka://{HOST}:{await self._run('kafka', argv, workdir, probe_kafka)}"

    async def _start_mongo(self, workdir: Path) -> str:
        binary = secantusd_bin()
        config = workdir / "secantusd.toml"
        config.touch()  # an explicit, empty config stops it picking up ~/.secantus/secantusd.toml
        argv = partial(secantusd_argv, binary, config=config, data=workdir / "mongo-data")
        return loopback_mongo_url(await self._run("mongo", argv, workdir, probe_mongo))

    async def _system_redis(self) -> str | None:
        if self._start_redis:
            return None
        url = os.environ.get("EVENTFLEET_REDIS_URL") or SYSTEM_REDIS_URL
        try:
            async with asyncio.timeout(_SYSTEM_REDIS_TIMEOUT_S):
                await probe_redis_url(url)
        except Exception:  # no system Redis answering is the normal case on a laptop
            return None
        return url if self._redis_db is None else _with_db(url, self._redis_db)

    async def _start_redis_server(self, workdir: Path) -> str:
        binary = redis_server_bin()
        data = workdir / "redis"
        data.mkdir(exist_ok=True)
        argv = partial(redis_server_argv, binary, data=data)
        port = await self._run("redis", argv, workdir, probe_redis)
        return f"redis://{HOST}:{port}/{self._redis_db or 0}"


def _with_db(url: str, db: int) -> str:
    return urlsplit(url)._replace(path=f"/{db}").geturl()
