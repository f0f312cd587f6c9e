"""The documentation's domain tutorial (docs/tutorial.md), run as written: module, command, requests, checks.

Blocks are found by their ``<!-- domain-tutorial:… -->`` markers and run as written, in a shell
with dev's export block: ``$EVENTFLEET_API`` names whichever port dev was given.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
import sys
from pathlib import Path

from tests.waiting import wait_for, within
from workers.devtools.embedded import free_port

ROOT = Path(__file__).resolve().parents[2]


def blocks() -> dict[str, tuple[str, str]]:
    """``{marker: (argument, code)}`` for every ``<!-- domain-tutorial:marker argument -->``."""
    readme = (ROOT / "docs" / "tutorial.md").read_text()
    pattern = re.compile(r"<!-- domain-tutorial:(\w+) ?([^ ]*) -->\n```\w+\n(.*?)```", re.DOTALL)
    return {marker: (argument, code) for marker, argument, code in pattern.findall(readme)}


def pairs(block: str) -> list[tuple[str, str]]:
    """(command, expected answer): each command line is followed by ``# answer``."""
    lines = block.strip().splitlines()
    found = list(zip(lines[::2], lines[1::2], strict=True))
    assert all(answer.startswith("# ") for _, answer in found), found
    return [(command, answer.removeprefix("# ")) for command, answer in found]


def matches(expected: str, got: str) -> bool:
    """``…`` stands for any value (an id, an offset)."""
    parts = [re.escape(part) for part in expected.split("…")]
    return re.fullmatch(".*?".join(parts), got.strip()) is not None


def printed(code: str) -> list[str]:
    """What the check block says it prints: the ``# `` line after each ``print``."""
    lines = code.splitlines()
    return [lines[i + 1].strip().removeprefix("# ") for i, line in enumerate(lines)
            if line.lstrip().startswith("print(")]  # fmt: skip


def write(root: Path, where: str, code: str) -> None:
    (root / where).parent.mkdir(parents=True, exist_ok=True)
    (root / where).write_text(code)


async def test_the_domain_tutorial_runs_as_written(tmp_path: Path) -> None:
    found = blocks()
    assert set(found) == {"file", "run", "try", "check", "client"}, sorted(found)
    for marker in ("file", "check"):
        write(tmp_path, *found[marker])
    (tmp_path / ".venv").symlink_to(sys.prefix)  # the README runs from a clone with .venv
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTFLEET_")}
    check = await asyncio.create_subprocess_exec(
        ".venv/bin/python", found["check"][0], cwd=tmp_path, env={**env, "PYTHONPATH": "."},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await within(check.communicate(), timeout_s=60, what="the check script")
    assert check.returncode == 0, err.decode()
    assert out.decode().splitlines() == printed(found["check"][1])

    port = str(free_port())
    env |= {"EVENTFLEET_HTTP_PORT": port, "TMPDIR": str(tmp_path)}
    [run] = found["run"][1].strip().splitlines()
    dev = await asyncio.create_subprocess_exec(
        "bash", "-c", run, cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        exported = await _until_serving(dev)
        pasted = dict(shlex.split(line)[1].split("=", 1) for line in exported)
        assert pasted["EVENTFLEET_API"] == f"http://127.0.0.1:{port}"
        shell = {**env, **{k: v for k, v in pasted.items() if not k.startswith("EVENTFLEET_")}}
        shell |= {
            "EVENTFLEET_API": pasted["EVENTFLEET_API"],
            "EVENTFLEET_TOKEN": pasted["EVENTFLEET_TOKEN"],
        }
        for command, expected in pairs(found["try"][1]):
            await _answers(command, expected, shell)
        await _client_block(tmp_path, *found["client"], env=shell)
        # The banner's export block, pasted into a shell elsewhere, reaches the sensors module.
        replay = await asyncio.create_subprocess_exec(
            "bash", "-c", "\n".join([*exported, f"{sys.prefix}/bin/eventfleet replay sensor s-1"]),
            cwd="/", env={k: v for k, v in env.items() if k != "PYTHONPATH"},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await within(replay.communicate(), timeout_s=60, what="the replay")
        assert replay.returncode == 0, err.decode()
        assert '"status": "retired"' in out.decode()
    finally:
        if dev.returncode is None:
            os.killpg(dev.pid, signal.SIGINT)
        _, err = await within(dev.communicate(), timeout_s=60, what="dev to stop at Ctrl-C")
    assert dev.returncode == 130, err.decode()[-2000:]  # stopped with Ctrl-C


async def _client_block(root: Path, where: str, code: str, *, env: dict[str, str]) -> None:
    """The tutorial's client script, run as written. ``ROOT`` joins the path: this checkout's
    ``workers.client``, whichever checkout the virtualenv was installed from."""
    write(root, where, code)
    script = await asyncio.create_subprocess_exec(
        ".venv/bin/python", where, cwd=root, env={**env, "PYTHONPATH": f".:{ROOT}"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await within(script.communicate(), timeout_s=60, what="the client script")
    assert script.returncode == 0, err.decode()
    assert out.decode().splitlines() == printed(code)


async def _answers(command: str, expected: str, env: dict[str, str]) -> None:
    """Each request is sent once: a read right after the appends says what it must see
    (``min_version``), so it is answered as printed the first time."""
    seen: list[str] = []

    async def answered() -> bool:
        process = await asyncio.create_subprocess_exec(
            "bash", "-c", command, stdout=asyncio.subprocess.PIPE, env=env
        )
        out, _ = await process.communicate()
        seen.append(out.decode())
        return matches(expected, seen[-1])

    try:
        await wait_for(answered, timeout_s=0, what=command)
    except AssertionError:
        raise AssertionError(f"{command}\nexpected: {expected}\nlast answer: {seen[-1]}") from None


async def _until_serving(dev: asyncio.subprocess.Process) -> list[str]:
    """Read the banner up to its export block's last line; the block's lines."""
    assert dev.stdout is not None
    exported: list[str] = []
    while True:
        line = (await within(dev.stdout.readline(), timeout_s=120, what="a banner line")).decode()
        assert line, "eventfleet dev ended before serving"
        if line.strip().startswith("export "):
            exported.append(line.strip())
        if line.strip().startswith("export EVENTFLEET_DOMAINS="):
            return exported


def test_the_requests_name_no_port_and_print_their_status() -> None:
    found = blocks()
    assert ":8080" not in found["try"][1] + found["client"][1]
    for command, answer in pairs(found["try"][1]):
        assert "$EVENTFLEET_API/" in command and "-w ' %{http_code}\\n'" in command, command
        assert re.search(r" [1-5][0-9]{2}$", answer), answer  # the status it promises, last


def test_an_answer_must_match_all_but_its_wildcards() -> None:
    assert matches('{"event_id":"…","version":1}', '{"event_id":"abc","version":1}\n')
    assert not matches('{"event_id":"…","version":1}', '{"event_id":"abc","version":2}')
    assert printed("print(1)\n# 1\nx = 2\nprint(x)\n# 2") == ["1", "2"]
