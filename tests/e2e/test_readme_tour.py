"""README's five-minute tour, pasted as a newcomer meets it: dev's export block and its own curl
lines first, then each block of the tour in order, in that one shell; every status the tour promises
(a trailing ``# 202``) is the one the fleet answers, and every other line exits 0."""

from __future__ import annotations

import asyncio
import re
import shlex
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e.test_dev import Dev, leftovers, start_dev

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = re.compile(r"^(?P<command>curl .*?)\s+#\s*(?P<status>\d{3}|2xx)\s*$")
DEV_URL = "http://127.0.0.1:8080"


def tour_blocks(readme: str) -> list[str]:
    section = readme.split("\n## A five-minute tour\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)\n```", section, re.DOTALL)


def banner_tries(banner: str) -> list[str]:
    """The curl lines dev's banner tells a newcomer to try first."""
    lines = banner.split("Try it", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    return [line.strip() for line in lines if line.strip().startswith("curl ")]


def checked(line: str) -> str:
    """``line`` as a shell step that fails unless the status it promises is the one answered."""
    match = EXPECTED.match(line)
    if match is None:
        return line
    command, status = match["command"], match["status"]
    measured = command.replace("curl -s ", "curl -s -w '\\n%{http_code}' ", 1)
    return (
        f"out=$({measured}); code=${{out##*$'\\n'}}; echo \"$out\"; "
        f'[[ "$code" == {status.replace("x", "?")} ]] || '
        f'{{ echo "expected {status}, got $code: "{shlex.quote(command)} >&2; exit 1; }}'
    )


def script(dev: Dev, readme: str) -> str:
    steps = ["set -euo pipefail"]  # the banner says: its curl lines after its export block
    steps += [f"export {name}={shlex.quote(value)}" for name, value in dev.exports.items()]
    steps += [checked(f"{line}   # 2xx") for line in banner_tries(dev.banner)]
    for block in tour_blocks(readme):
        for line in block.splitlines():
            steps.append(checked(line.replace(DEV_URL, dev.api)))
    return "\n".join(steps)


def test_the_tour_is_found_and_promises_statuses() -> None:
    blocks = tour_blocks((ROOT / "README.md").read_text())
    promised = [
        m["status"] for b in blocks for line in b.splitlines() if (m := EXPECTED.match(line))
    ]
    assert len(blocks) >= 4
    assert {"200", "202", "409"} <= set(promised)


def test_a_promise_the_fleet_breaks_fails_the_step() -> None:
    step = checked("curl -s http://127.0.0.1:1/nothing   # 200")
    assert "exit 1" in step and "expected 200" in step


@pytest.fixture(scope="module")
async def dev(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Dev]:
    running = await start_dev(tmp_path_factory.mktemp("tour") / "tmp")
    yield running
    assert await running.stop() == 130
    assert leftovers(running.workdir) == []


async def test_the_tour_runs_as_written_against_eventfleet_dev(dev: Dev) -> None:
    readme = (ROOT / "README.md").read_text()
    venv = Path(sys.prefix)
    process = await asyncio.create_subprocess_exec(
        "bash", "-c", script(dev, readme).replace(".venv/bin/", f"{venv}/bin/"),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, f"{err.decode()}\n--- output ---\n{out.decode()}"
    text = out.decode()
    assert '"duplicate":true' in text.replace(" ", "")  # the paid command, sent twice
    assert "transition_rejected" in text  # the early shipment, and its outcome
    assert '"outcome":"rejected"' in text.replace(" ", "")
