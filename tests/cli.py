"""The ``eventfleet`` command as a user runs it: a process of its own, with only the
``EVENTFLEET_*`` variables a test gives it, and the one-line failure every refusal must be."""

from __future__ import annotations

import asyncio
import os
import sys

from tests.waiting import within

EXAMPLES = {"EVENTFLEET_DOMAINS": "workers.examples.domains:default_domains"}
"""The domains every call runs unless it names its own (a worker never guesses)."""


async def eventfleet(
    *args: str, env: dict[str, str] | None = None, domains: bool = True, stdin: bytes = b""
) -> tuple[int, str, str]:
    """``(exit code, stdout, stderr)`` of ``eventfleet *args`` with ``env`` (a fleet's ``env``,
    to act on that fleet) over this process's environment without its ``EVENTFLEET_*``. It
    reads ``stdin`` (what a person would type) and then its end, so a command that asks more
    waits for no one."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EVENTFLEET_")}
    chosen = EXAMPLES if domains else {}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "workers.cli", *args, env={**clean, **chosen, **(env or {})},
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await within(
        process.communicate(stdin), timeout_s=90, what=f"eventfleet {' '.join(args)} to exit"
    )
    return process.returncode or 0, out.decode(), err.decode()


def assert_one_line(err: str) -> None:
    """A failure is one line, ``eventfleet: error: …``, and never a traceback."""
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("eventfleet: error: "), err
