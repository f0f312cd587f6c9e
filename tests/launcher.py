"""Fleet processes forked from a process that has already imported the worker.

A fresh ``python -m workers.cli worker`` spends about 1.5 s of CPU importing before it does
anything of its own, and a run of the suite starts about 230 of them: some 300 CPU seconds,
a fifth of the run's, on 2 cores where every CPU second is wall time. So each pytest worker starts one launcher (``python -m
tests.launcher``) at its first fleet. The launcher imports what ``eventfleet worker`` imports,
then, asked to, forks a child that is what ``python -m workers.cli ARGS`` would be: a session
of its own, its log as stdout and stderr, stdin from ``/dev/null``, exactly the environment
asked for, ``workers.cli`` run as ``__main__`` and its exit code the process's. The launcher
reaps its children and reports each one's exit status; the test holds a ``Launched``, which
answers as ``asyncio.subprocess.Process`` does (pid, returncode, wait, send_signal, kill).

Still started fresh: a process whose environment changes what the interpreter sets up as it
starts (a ``PYTHON*`` variable, the locale or the time zone unlike the launcher's), every
process when ``EVENTFLEET_TESTS_FRESH=1``, and everything that is not a fleet process (the
CLI's calls, the dev stack, the bench): they keep the fresh start under test.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import importlib
import os
import runpy
import select
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import orjson

from tests.waiting import within

PRELOAD = (
    # What ``workers.cli.commands.run_worker`` imports, and the domains the tests' fleets run.
    "workers.cli",
    "workers.cli.commands",
    "workers.runtime.collector",
    "workers.http",
    "workers.runtime.compose",
    "workers.runtime.connections",
    "workers.runtime.door.auth",
    "workers.runtime.loading",
    "workers.runtime.rebuild",
    "workers.runtime.serve",
    "workers.secrets",
    "workers.examples.domains",
)
LAUNCHED = "w:"
"""How a launched worker's name begins (then its role)."""
PR_SET_NAME = 15
FRESH = "EVENTFLEET_TESTS_FRESH"
"""Set to 1: every fleet process starts as a fresh interpreter, as before the launcher."""


class Child(Protocol):
    """What a test uses of a fleet's process, launched or started fresh."""

    @property
    def pid(self) -> int: ...
    @property
    def returncode(self) -> int | None: ...
    async def wait(self) -> int: ...
    def send_signal(self, sig: int) -> None: ...
    def kill(self) -> None: ...


class Launched:
    """A process the launcher forked: its exit status comes from the launcher, which reaps it."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._exited = asyncio.Event()

    def exited(self, code: int) -> None:
        self.returncode = code
        self._exited.set()

    async def wait(self) -> int:
        await self._exited.wait()
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:  # as asyncio's: a process known to be gone is not signalled
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class Launcher:
    """The pytest worker's end of its launcher: one request at a time, answers read as they come."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.children: dict[int, Launched] = {}
        self._started: asyncio.Queue[Launched] = asyncio.Queue()
        self._one_at_a_time = asyncio.Lock()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls) -> Launcher:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.launcher",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        return cls(process)

    async def launch(
        self, argv: Sequence[str], env: Mapping[str, str], log: str, *, timeout_s: float = 30
    ) -> Launched:
        assert self.process.stdin is not None
        request = {"argv": list(argv), "env": dict(env), "log": log, "cwd": os.getcwd()}
        async with self._one_at_a_time:
            self.process.stdin.write(orjson.dumps(request) + b"\n")
            await self.process.stdin.drain()
            return await within(self._started.get(), timeout_s=timeout_s, what="a launch")

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            said = orjson.loads(line)
            if "started" in said:  # known before any exit of it is read
                child = self.children[said["started"]] = Launched(said["started"])
                self._started.put_nowait(child)
            elif (child := self.children.get(said["exited"])) is not None:
                child.exited(said["code"])
        # The launcher is gone (the session ends, or it failed): nobody could report an exit of
        # a child left running, so none is left running.
        for child in self.children.values():
            if child.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
                child.exited(-signal.SIGKILL)

    async def aclose(self) -> None:
        """Ends the launcher: told by the end of its input (its children are the tests' to stop)."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        await within(self.process.wait(), timeout_s=30, what="the launcher to end")
        await self._reader


_LAUNCHER: dict[asyncio.AbstractEventLoop, Launcher] = {}


async def start_fleet_process(argv: Sequence[str], env: Mapping[str, str], log: Path) -> Child:
    """``python -m workers.cli *argv`` with ``env``, stdout and stderr to ``log``, in a session
    of its own: forked by this loop's launcher, or started fresh (see the module)."""
    out = log.open("ab")  # there at once, whichever way the process starts
    try:
        if os.environ.get(FRESH) == "1" or _starts_otherwise(env):
            return await asyncio.create_subprocess_exec(
                sys.executable, "-m", "workers.cli", *argv,
                env=dict(env), stdout=out, stderr=out, start_new_session=True,
            )  # fmt: skip
    finally:
        out.close()
    loop = asyncio.get_running_loop()
    launcher = _LAUNCHER.get(loop)
    if launcher is None or launcher.process.returncode is not None:
        launcher = _LAUNCHER[loop] = await Launcher.start()
    return await launcher.launch(argv, env, str(log))


async def close_launchers() -> None:
    for launcher in _LAUNCHER.values():
        await launcher.aclose()
    _LAUNCHER.clear()


def _starts_otherwise(env: Mapping[str, str]) -> bool:
    """Whether ``env`` changes what an interpreter sets up as it starts (a ``PYTHON*``
    variable, the locale or the time zone unlike ours)."""
    names = {n for n in (*env, *os.environ) if n.startswith(STARTUP)}
    return any(env.get(n) != os.environ.get(n) for n in names)


STARTUP = ("PYTHON", "LANG", "LC_", "TZ")


# The launcher itself.


def serve() -> None:
    """Read requests on stdin, fork each, report starts and exits on stdout, until stdin ends."""
    for name in PRELOAD:
        importlib.import_module(name)
    if threading.active_count() != 1:  # a fork copies only the thread that forks
        raise SystemExit(f"the launcher runs threads after its imports: {threading.enumerate()}")
    woken, wake = os.pipe()
    os.set_blocking(wake, False)
    signal.set_wakeup_fd(wake)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes the select: a child to reap
    children: set[int] = set()
    pending = b""
    while True:
        ready, _, _ = select.select([0, woken], [], [])
        if woken in ready:
            os.read(woken, 4096)
            _reap(children)
        if 0 in ready:
            chunk = os.read(0, 1 << 16)
            if not chunk:
                return  # the pytest worker is done (or gone)
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                set_up, told = os.pipe()
                pid = os.fork()
                if pid == 0:
                    os.close(set_up)
                    _child(orjson.loads(line), told, (woken, wake))  # never returns
                os.close(told)
                os.read(set_up, 1)  # as a fresh start is: its session, streams and environment
                os.close(set_up)
                children.add(pid)
                _say({"started": pid})


def _reap(children: set[int]) -> None:
    for pid in list(children):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            children.discard(pid)
            _say({"exited": pid, "code": os.waitstatus_to_exitcode(status)})


def _say(what: dict[str, Any]) -> None:
    os.write(1, orjson.dumps(what) + b"\n")


def _child(request: dict[str, Any], told: int, launchers: tuple[int, ...]) -> None:
    """Become ``python -m workers.cli *argv``: its session, its streams, its environment, and
    its end as the interpreter's (threads joined, atexit functions run, streams flushed)."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()
        log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        for fd in (*launchers, log, null):
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = [sys.argv[0], *request["argv"]]  # runpy puts workers/cli/__main__.py first
        if request["argv"][:1] == ["worker"]:
            _name(request["argv"])
        os.close(told)  # set up: the launcher reports the start
        code = _run_main()
        threading._shutdown()  # type: ignore[attr-defined]  # as Py_FinalizeEx: join threads
        atexit._run_exitfuncs()
    except BaseException:
        sys.excepthook(*sys.exc_info())
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def _name(argv: list[str]) -> None:
    """Name a worker by its role (``/proc/PID/comm``, as ``ps -o comm`` and
    ``tests.bench.suite_cpu`` read it): its command line is the launcher's."""
    role = argv[argv.index("--role") + 1] if "--role" in argv[:-1] else "all"
    name = f"{LAUNCHED}{role}"[:15].encode()
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NAME, ctypes.c_char_p(name), 0, 0, 0)


def _run_main() -> int:
    """``workers.cli`` run as ``__main__``; its exit code as the interpreter makes it."""
    try:
        runpy.run_module("workers.cli", run_name="__main__", alter_sys=True)
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            return e.code or 0
        print(e.code, file=sys.stderr)
        return 1
    except BaseException:
        sys.excepthook(*sys.exc_info())
        return 1
    return 0


if __name__ == "__main__":
    serve()
