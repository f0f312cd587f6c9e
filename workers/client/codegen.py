"""Generates what the client knows of the fleet's declarations, never kept by hand.

``python -m workers.client.codegen`` writes ``workers/client/_catalogue.py``, one exception
class per code of ``ERROR_CODES`` (workers/runtime/error_codes.py): run it after a code is added or
changed; tests/unit/test_client_errors.py fails until then.

``python -m workers.client.codegen events myapp.domains:enabled --out myapp/fleet`` writes one
module of typed event data per declared domain (``workers.client.render_events``), for code that
calls a fleet of those domains. The client imports neither this module nor what it reads.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from workers.client._base import RETRIABLE_STATUSES
from workers.client.render_events import class_docstring
from workers.runtime.error_codes import ERROR_CODES, ErrorCode

__all__ = ["TARGET", "class_name", "is_retriable", "main", "render"]

TARGET = Path(__file__).with_name("_catalogue.py")
_WIDTH = 100
_HEADER = '''"""One exception class per code of the fleet's error catalogue. Generated: do not edit.

Made by ``python -m workers.client.codegen`` from ``ERROR_CODES`` in workers/runtime/error_codes.py;
tests/unit/test_client_errors.py fails when they drift. Each docstring is the code's cause and fix.
"""

from workers.client._base import ApiError
'''


def is_retriable(entry: ErrorCode) -> bool:
    """Whether sending again can help: a status that says "later", or a fix that says retry
    (a 409 ``conflict`` or ``command_in_progress``)."""
    return entry.status in RETRIABLE_STATUSES or entry.fix.lower().startswith("retry")


def class_name(code: str) -> str:
    """``transition_rejected`` -> ``TransitionRejectedError``."""
    return "".join(part.capitalize() for part in code.split("_")) + "Error"


def _class_line(entry: ErrorCode) -> str:
    keywords = f'ApiError, code="{entry.code}", status={entry.status}'
    if is_retriable(entry):
        keywords += ", retriable=True"
    line = f"class {class_name(entry.code)}({keywords}):"
    if len(line) <= _WIDTH:
        return line
    return f"class {class_name(entry.code)}(\n    {keywords}\n):"  # as ruff format wraps it


def _docstring(entry: ErrorCode) -> str:
    text = f"{entry.status} ``{entry.code}``: {entry.cause}. Fix: {entry.fix}."
    text = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"').replace("`", "``")
    text = text.replace("````", "``")  # the catalogue's `x` becomes ``x``, once
    return class_docstring(text, width=_WIDTH - 7)


def render(entries: Iterable[ErrorCode] = ERROR_CODES) -> str:
    """The catalogue module's text for ``entries``."""
    classes = [f"{_class_line(entry)}\n{_docstring(entry)}\n" for entry in entries]
    return "\n\n".join([_HEADER, *classes])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m workers.client.codegen",
        description=(
            "Write the client's error classes (no arguments), or typed event data of domains."
        ),
    )
    commands = parser.add_subparsers(dest="command")
    events = commands.add_parser("events", help="one module of typed event data per domain")
    events.add_argument("domains", help="module:function returning Domains, as EVENTFLEET_DOMAINS")
    events.add_argument("--out", type=Path, required=True, help="the folder to write into")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "events":
        from workers.client.render_events import write_modules  # reads the declarations

        for path in write_modules(args.domains, args.out):
            print(f"wrote {path}", file=sys.stderr)
        return 0
    TARGET.write_text(render())
    print(f"wrote {TARGET} ({len(ERROR_CODES)} codes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
