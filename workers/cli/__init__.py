"""The ``eventfleet`` command.

``eventfleet --version`` is answered here, from the package's metadata, before the command line,
the settings or any driver is imported (those take seconds on a loaded machine); every other
call goes on to ``workers.cli.entry`` (not a ``main`` module: importing one would replace this
package's ``main`` function with the module of that name).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from workers.cli.version import package_version

if TYPE_CHECKING:
    from workers.cli.parsing import Parser

__all__ = ["main", "parser"]

VERSION_FLAGS = (["--version"],)
"""The calls answered without the full command line (``--version`` alone, as argparse takes it)."""


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments in VERSION_FLAGS:
        print(f"eventfleet {package_version()}", flush=True)
        return 0
    from workers.cli.entry import main as run

    return run(arguments)


def parser() -> Parser:
    from workers.cli.args import parser as build

    return build()
