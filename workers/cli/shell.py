"""What the ``eventfleet`` commands share at the shell: the exit codes, the one failure line,
asking to confirm, and who acts (for the audit trail)."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable
from typing import TextIO

import orjson

from topics.errors import InvalidInput

USAGE, FAILURE = 2, 1
"""The exit codes of a usage or configuration mistake, and of a failure (0: done)."""


def fail(message: str, code: int = FAILURE) -> int:
    """Print the one line of a failure; return its exit code."""
    print(f"eventfleet: error: {' '.join(message.split())}", file=sys.stderr, flush=True)
    return code


def print_json(out: TextIO, value: object, *, indent: bool = False) -> int:
    """Write ``value`` to ``out`` as JSON, one line unless ``indent``; return the exit code 0."""
    out.write(orjson.dumps(value, option=orjson.OPT_INDENT_2 if indent else 0).decode() + "\n")
    return 0


def confirmed(ask: Callable[[str], str], question: str) -> bool:
    """Whether the operator answers ``question`` with yes."""
    try:
        return ask(question).strip().lower() in ("y", "yes")
    except EOFError:  # no terminal: no confirmation
        return False


def login_name() -> str:
    """The caller's login name; "" where there is none."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no USER and no passwd entry (a bare container)
        return ""


def operator_name(given: str | None, doing: str) -> str:
    """Who acts: ``--operator``, else the login name; InvalidInput when there is neither."""
    name = given or login_name()
    if not name:
        raise InvalidInput(f"who {doing}? give --operator NAME for the audit trail.")
    return name
