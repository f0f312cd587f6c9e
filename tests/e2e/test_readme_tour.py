"""README's five-minute tour, pasted as a newcomer meets it: dev's export block first, then its
own curl lines, then each block of the tour in order, in that one shell; every curl line prints
the status it answered (``-w``) and that printed status is the one the tour promises (a trailing
``# 202``); every other line exits 0."""

from __future__ import annotations

import asyncio
import re
import shlex
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e.dev_runs import Dev, leftovers, start_dev
from tests.waiting import within

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = re.compile(r"^(?P<command>curl .*?)\s+#\s*(?P<status>\d{3}|2xx)\s*$")


def tour_blocks(readme: str) -> list[str]:
    section = readme.split("\n## A five-minute tour\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)\n```", section, re.DOTALL)


def banner_tries(banner: str) -> list[str]:
    """The curl lines dev's banner tells a newcomer to try first."""
    lines = banner.split("Try it", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    return [line.strip() for line in lines if line.strip().startswith("curl ")]


def checked(line: str) -> str:
    """``line`` as a shell step, run as written, that fails unless the status it printed last
    (its ``-w``) is the one it promises."""
    match = EXPECTED.match(line)
    if match is None:
        return line
    command, status = match["command"], match["status"]
    return (
        f'out=$({command}); echo "$out"; printed=${{out##*[[:space:]]}}; '
        f'[[ "$printed" =~ ^[0-9]{{3}}$ && "$printed" == {status.replace("x", "?")} ]] || '
        f'{{ echo "expected {status}, printed ${{printed:0:40}}: "{shlex.quote(command)} >&2; '
        "exit 1; }"
    )


def script(dev: Dev, readme: str) -> str:
    steps = ["set -euo pipefail"]  # the README: the export block first, then the banner's lines
    steps += [f"export {name}={shlex.quote(value)}" for name, value in dev.exports.items()]
    steps += [checked(f"{line}   # 2xx") for line in banner_tries(dev.banner)]
    for block in tour_blocks(readme):
        steps += [checked(line) for line in block.splitlines()]
    return "\n".join(steps)


def test_the_tour_is_found_and_promises_statuses() -> None:
    blocks = tour_blocks((ROOT / "README.md").read_text())
    promised = [
        m["status"] for b in blocks for line in b.splitlines() if (m := EXPECTED.match(line))
    ]
    assert len(blocks) >= 4
    assert {"200", "202", "409"} <= set(promised)


def test_every_tour_request_prints_its_status_and_names_no_port() -> None:
    lines = [line for b in tour_blocks((ROOT / "README.md").read_text()) for line in b.splitlines()]
    curls = [line for line in lines if line.startswith("curl ")]
    assert curls and all(EXPECTED.match(line) for line in curls), "a curl line promises nothing"
    assert all(line.startswith('curl -s -w "$STATUS" ') for line in curls), curls
    assert all("$EVENTFLEET_API/" in line and ":8080" not in line for line in curls), curls


def run_step(step: str, answer: str) -> subprocess.CompletedProcess[str]:
    """``step`` in bash, where curl is a stand-in printing ``answer``."""
    fake = f"curl() {{ printf '%s' {shlex.quote(answer)}; }}"
    return subprocess.run(
        ["bash", "-c", f"set -euo pipefail\n{fake}\n{step}"], capture_output=True, text=True
    )


@pytest.mark.parametrize(
    ("answer", "promise", "passes"),
    [
        ('{"ok":true} 202\n', "202", True),
        ('{"ok":true} 201', "2xx", True),
        ('{"error":"x"} 409', "202", False),  # a broken promise
        ('{"ok":true}', "200", False),  # a line that prints no status
        ('{"n": 202}', "202", False),  # a number in the body is not a status
    ],
)
def test_a_step_passes_only_on_the_status_it_printed(
    answer: str, promise: str, passes: bool
) -> None:
    result = run_step(checked(f"curl -s -w x http://h/x   # {promise}"), answer)
    assert (result.returncode == 0) is passes, result.stderr
    assert answer.strip() in result.stdout  # the newcomer sees what curl printed
    if not passes:
        assert f"expected {promise}, printed" in result.stderr


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
    out, err = await within(process.communicate(), timeout_s=120, what="the README tour")
    assert process.returncode == 0, f"{err.decode()}\n--- output ---\n{out.decode()}"
    text = out.decode()
    assert '"duplicate":true' in text.replace(" ", "")  # the paid command, sent twice
    assert "transition_rejected" in text  # the early shipment, and its outcome
    assert '"outcome":"rejected"' in text.replace(" ", "")
