"""Child processes of the stack: spawned in their own session, killed at exit if left behind."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from workers.devtools.embedded.common import INSTALL_FIX, StackStartError


def spawn(argv: Sequence[str], *, cwd: Path, log_path: Path) -> subprocess.Popen[bytes]:
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
    SAFETY_NET.track(proc)
    return proc


def process_state(pid: int) -> str | None:
    """The process state letter from /proc (T: stopped), or None when it cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


class SafetyNet:
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


SAFETY_NET = SafetyNet()
