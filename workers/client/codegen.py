"""Writes ``workers/client/_catalogue.py``: one exception class per code of ``ERROR_CODES``.

``python -m workers.client.codegen`` after a code is added to or changed in
``workers/runtime/answers.py``; tests/unit/test_client_errors.py fails until then. The one
module of the client that imports the server's error catalogue, and only for this.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterable
from pathlib import Path

from workers.runtime.answers import ERROR_CODES, ErrorCode

__all__ = ["TARGET", "class_name", "is_retriable", "main", "render"]

TARGET = Path(__file__).with_name("_catalogue.py")
RETRIABLE_STATUSES = (429, 503, 504)
"""Too many requests, unavailable, not yet: each says "later", never "not like this"."""


def is_retriable(entry: ErrorCode) -> bool:
    """Whether sending again can help: a status that says "later", or a fix that says retry
    (a 409 ``conflict`` or ``command_in_progress``)."""
    return entry.status in RETRIABLE_STATUSES or entry.fix.lower().startswith("retry")


def class_name(code: str) -> str:
    """``transition_rejected`` -> ``TransitionRejectedError``."""
    return "".join(part.capitalize() for part in code.split("_")) + "Error"


def _docstring(entry: ErrorCode) -> str:
    text = f"{entry.status} ``{entry.code}``: {entry.cause}. Fix: {entry.fix}."
    text = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"').replace("`", "``")
    text = text.replace("````", "``")  # the catalogue's `x` becomes ``x``, once
    lines = textwrap.wrap(text, width=92, break_on_hyphens=False)
    if len(lines) == 1:
        return f'    """{lines[0]}"""'
    return '    """' + "\n    ".join(lines) + '\n    """'


def render(entries: Iterable[ErrorCode] = ERROR_CODES) -> str:
    """The module's text for ``entries``."""
    entries = tuple(entries)
    names = [class_name(e.code) for e in entries]
    parts = [
        '"""One exception class per code of the fleet\'s error catalogue. Generated: do not edit.\n'
        "\n"
        "Made by ``python -m workers.client.codegen`` from ``ERROR_CODES`` in\n"
        "workers/runtime/answers.py; tests/unit/test_client_errors.py fails when they drift.\n"
        '"""\n',
        "from __future__ import annotations\n",
        "from workers.client._base import ApiError\n",
        "__all__ = [\n" + "".join(f'    "{n}",\n' for n in ["BY_CODE", *sorted(names)]) + "]\n",
    ]
    for entry, name in zip(entries, names, strict=True):
        parts.append(
            f"\nclass {name}(ApiError):\n{_docstring(entry)}\n\n"
            f'    code = "{entry.code}"\n'
            f"    status = {entry.status}\n"
            f"    retriable = {is_retriable(entry)}\n"
        )
    parts.append(
        "\nBY_CODE: dict[str, type[ApiError]] = {\n"
        + "".join(f"    {n}.code: {n},\n" for n in names)
        + "}\n"
        '"""Each code of the catalogue to its class."""\n'
    )
    return "\n".join(parts)


def main() -> int:
    TARGET.write_text(render())
    print(f"wrote {TARGET} ({len(ERROR_CODES)} codes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
