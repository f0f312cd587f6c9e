"""Benchmarks run as scripts (``python -m tests.bench.<name>``), never collected by pytest."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]


def archived(rev: str, paths: Sequence[str], into: Path) -> Path:
    """``paths`` as they are at ``rev`` (``git archive``), written below ``into``."""
    archive = subprocess.run(
        ["git", "archive", rev, *paths], cwd=ROOT, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def run_script(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``, with SIGTERM (``timeout``, ``kill``) stopping it as Ctrl-C does:
    its ``async with`` blocks close, so the embedded stack and the processes it started stop
    with it (as ``eventfleet bench`` does, ``workers/cli/entry.py``)."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    return asyncio.run(main)
