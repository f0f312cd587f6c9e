"""The main job as a newcomer runs it: ``eventfleet dev --demo``, short, verified, clean exit."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

from tests.waiting import within
from workers.devtools.embedded import EmbeddedStack, free_port


async def test_the_demo_verifies_itself_and_exits_zero(stack: EmbeddedStack) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTFLEET_")}
    # Its own Kafka and MongoDB are started embedded, as on a fresh machine; Redis is shared.
    env["EVENTFLEET_REDIS_URL"] = stack.urls.redis_url
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "workers.cli", "dev", "--demo", "--demo-scale", "0.1", "--port", str(free_port()),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await within(process.communicate(), timeout_s=180, what="the demo to exit")
    text = out.decode()
    assert process.returncode == 0, f"{text}\n{err.decode()[-3000:]}"
    assert "-XPOST" in text and "/metrics" in text  # what a newcomer needs
    assert "export EVENTFLEET_TOKEN=" in text  # dev shuts its door and prints the key
    assert "verified:" in text and "VERIFICATION FAILED" not in text
    rows = ("accepted", "events stored", "snapshots", "downstream events", "p50 / p99",
            "process manager: deadlines fired", "orders it cancelled", "shipments it requested")  # fmt: skip
    for row in rows:
        assert row in text, row
    # The verdict is the very last line, after every shutdown log line.
    assert text.strip().splitlines()[-1].startswith("verified:")
    progress = err.decode().replace("\r", "\n")
    # The logs went to a file, said where: the terminal holds dev's steps, progress, verdicts.
    logs = re.search(r"the demo's logs go to (\S+) \(errors also here\)", progress)
    assert logs is not None, progress[:2000]
    assert "INFO" not in progress and f"this run's logs: {logs.group(1)}" in progress
    assert "INFO" in taken(Path(logs.group(1)))  # the roles' lines, kept for whoever needs them
    # The plan is exact: the progress line ends at N of N, and N is what the summary counts.
    answered = re.findall(r"demo: (\d+) of (\d+) requests answered", progress)
    done, planned = answered[-1]
    assert done == planned and re.search(rf"requests\s+{planned}\n", text)
    for step in ("the store", "account balances", "snapshots", "chat views",
                 "the process manager (deadlines, shipments)"):  # fmt: skip
        assert f"verifying {step}: ok" in progress, step


def taken(path: Path) -> str:
    """The text of a file the run left, removed once read."""
    try:
        return path.read_text()
    finally:
        path.unlink()
