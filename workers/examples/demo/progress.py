"""The demo's progress line: redrawn in place on a terminal, and never shares a line with a log
line.

On a terminal the line is redrawn with ``\\r``; a log record that comes meanwhile first clears
it (a filter on every root handler), so the record starts on a clean line and the next tick
draws the progress again below it. Elsewhere (a file, a pipe) each tick is a line of its own.
"""

from __future__ import annotations

import logging
from typing import TextIO

CLEAR = "\r\x1b[K"


class ProgressLine(logging.Filter):
    """One line of progress on ``stream`` that log records interrupt cleanly."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self._stream = stream
        self._tty = stream.isatty()
        self._open = False
        self._last = ""
        self._handlers: list[logging.Handler] = []

    def __enter__(self) -> ProgressLine:
        self._handlers = [
            h
            for h in logging.getLogger().handlers  # those writing on its line
            if getattr(h, "stream", None) is self._stream
        ]
        for handler in self._handlers:
            handler.addFilter(self)
        return self

    def __exit__(self, *exc: object) -> None:
        for handler in self._handlers:
            handler.removeFilter(self)
        self._handlers = []

    def show(self, text: str) -> None:
        """Draw ``text`` as the current progress."""
        if self._tty:
            self._stream.write(f"{CLEAR}{text}")
            self._open = True
        elif text != self._last:
            self._stream.write(f"{text}\n")
        self._last = text
        self._stream.flush()

    def done(self, text: str) -> None:
        """The final progress, ending its line."""
        if self._tty:
            self._stream.write(f"{CLEAR}{text}\n")
        elif text != self._last:
            self._stream.write(f"{text}\n")
        self._open = False
        self._last = text
        self._stream.flush()

    def filter(self, record: logging.LogRecord) -> bool:
        if self._open:  # a record is about to be written: take the progress off its line
            self._stream.write(CLEAR)
            self._stream.flush()
            self._open = False
        return True
