"""Benchmarks run as scripts (``python -m tests.bench.<name>``), never collected by pytest."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_script(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``, with SIGTERM (``timeout``, ``kill``) stopping it as Ctrl-C does:
    its ``async with`` blocks close, so the embedded stack and the processes it started stop
    with it (as ``eventfleet bench`` does, ``workers/cli/entry.py``)."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    return asyncio.run(main)
