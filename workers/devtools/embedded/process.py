"""One service of the stack as a child process: started until ready, stopped, paused, killed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from workers.devtools.embedded.children import SAFETY_NET, process_state, spawn
from workers.devtools.embedded.common import HOST, LABELS, PortInUse, StackStartError
from workers.devtools.embedded.probes import port_is_free

_PORT_IN_USE_MARKS = ("Address already in use", "AddrInUse")
_PROBE_TIMEOUT_S = 2.0


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
        self.label = LABELS[name]
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
        if not port_is_free(self.port):
            raise PortInUse(self._port_message())
        self._proc = spawn(self._argv, cwd=self._workdir, log_path=self.log_path)
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
            SAFETY_NET.procs.pop(proc.pid, None)
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
        while process_state(self._proc.pid) not in ("T", "t", None) and time.monotonic() < deadline:
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
                # asyncio.timeout, not wait_for: on Python 3.11, a cancel that lands as a probe
                # fails made wait_for raise the probe's error, and this loop went on starting
                # a stack its caller had cancelled.
                async with asyncio.timeout(_PROBE_TIMEOUT_S):
                    await self._probe()
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
