"""While ``eventfleet dev --demo`` runs, its logs go to a file: the terminal keeps the banner, the
demo's progress line and its verdict, one line each, not interleaved with the roles' INFO lines.

Errors still reach the terminal too (a failure is never hidden in a file); the file, kept after
the run, holds every record at EVENTFLEET_LOG_LEVEL and its path is said at the start and the
end.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TERMINAL_LEVEL = logging.ERROR
"""What the terminal still shows while the logs go to the file."""


@contextmanager
def logs_aside() -> Iterator[Path]:
    """Every record to a new file in the system's temporary directory; the terminal's handlers
    (those writing to stderr or stdout) show errors only, until the block ends."""
    root = logging.getLogger()
    fd, name = tempfile.mkstemp(prefix="eventfleet-demo-", suffix=".log")
    path = Path(name)
    handler = logging.FileHandler(path, encoding="utf-8")
    with open(fd, "w"):  # mkstemp's descriptor: the handler opens the file by name
        pass
    terminal = [h for h in root.handlers if getattr(h, "stream", None) in (sys.stderr, sys.stdout)]
    if terminal:
        handler.setFormatter(terminal[0].formatter)
    levels = [h.level for h in terminal]
    for h in terminal:
        h.setLevel(max(h.level, TERMINAL_LEVEL))
    root.addHandler(handler)
    try:
        yield path
    finally:
        root.removeHandler(handler)
        handler.close()
        for h, level in zip(terminal, levels, strict=True):
            h.setLevel(level)
