"""``eventfleet dev`` runs for end-to-end tests: one started in a TMPDIR of its own, its banner
and export block read, requests sent with the tokens it printed, and what it left behind."""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp
import orjson

from tests.waiting import within

READY_S = 90
PREFIX = f"devtest{uuid.uuid4().hex[:6]}."  # other runs share the user's Redis


@dataclass
class Dev:
    """A running ``eventfleet dev`` and what it printed."""

    process: asyncio.subprocess.Process
    banner: str
    workdir: Path

    @property
    def exports(self) -> dict[str, str]:
        """The export block, parsed as a shell would."""
        found = {}
        for line in self.banner.splitlines():
            words = shlex.split(line)
            if words[:1] == ["export"]:
                name, _, value = words[1].partition("=")
                found[name] = value
        return found

    @property
    def api(self) -> str:
        return next(w for w in self.banner.split() if w.startswith("http://")).split("/v1/")[0]

    async def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        return await within(self.process.wait(), timeout_s=60, what="dev to stop at Ctrl-C")


def prepare(workdir: Path) -> BinaryIO:
    """Make the TMPDIR of a dev run; its stderr goes to a log beside it."""
    workdir.mkdir(parents=True, exist_ok=True)
    return (workdir.parent / f"{workdir.name}.log").open("wb")


def leftovers(workdir: Path) -> list[str]:
    """What a run left in its TMPDIR: its data, Faust's and the stack's must all be gone."""
    return os.listdir(workdir)


async def start_dev(workdir: Path, *args: str, env: dict[str, str] | None = None) -> Dev:
    """Start ``eventfleet dev --port 0`` with TMPDIR=workdir; return once its banner is out."""
    log = prepare(workdir)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EVENTFLEET_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "workers.cli", "dev", "--port", "0", *args,
        env={**clean, "TMPDIR": str(workdir), **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=log,
    )  # fmt: skip
    log.close()
    assert process.stdout is not None
    lines: list[str] = []

    async def banner() -> None:
        assert process.stdout is not None
        while not any(line.startswith("  export EVENTFLEET_DOMAINS=") for line in lines):
            line = await process.stdout.readline()
            if not line:
                raise AssertionError(f"dev exited before its banner:\n{''.join(lines)}")
            lines.append(line.decode())

    try:
        await within(banner(), timeout_s=READY_S, what="dev's banner")
    except BaseException:
        process.kill()
        await process.wait()
        raise
    return Dev(process, "".join(lines), workdir)


async def post(dev: Dev, path: str, body: dict[str, object], *, token: bool = True) -> int:
    """POST with the token dev's banner printed (dev runs with its own signing key)."""
    status, _ = await call(dev, "POST", path, body, as_user="" if token else None)
    return status


async def call(
    dev: Dev, method: str, path: str, body: dict[str, object] | None = None,
    *, as_user: str | None = "",
) -> tuple[int, Any]:  # fmt: skip
    """A request as one of dev's users (``alice``, ``bob``, ``ops``; "": ``EVENTFLEET_TOKEN``;
    None: no token), with the token the export block holds for it."""
    variable = "EVENTFLEET_TOKEN" + (f"_{as_user.upper()}" if as_user else "")
    headers = {} if as_user is None else {"Authorization": f"Bearer {dev.exports[variable]}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    data = None if body is None else orjson.dumps(body)
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, f"{dev.api}{path}", data=data, headers=headers) as response,
    ):
        raw = await response.read()
        try:
            return response.status, orjson.loads(raw)
        except orjson.JSONDecodeError:
            return response.status, raw.decode(errors="replace")
