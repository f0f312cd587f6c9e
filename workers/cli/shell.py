"""What every ``eventfleet`` command shares at the shell: its exit codes and the one failure
line."""

from __future__ import annotations

import sys

USAGE, FAILURE = 2, 1
"""The exit codes of a usage or configuration mistake, and of a failure (0: done)."""


def fail(message: str, code: int = FAILURE) -> int:
    """Print the one line of a failure; return its exit code."""
    print(f"eventfleet: error: {' '.join(message.split())}", file=sys.stderr, flush=True)
    return code
