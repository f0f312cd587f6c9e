"""Log lines no input can forge: text (the default) and JSON (EVENTFLEET_LOG_FORMAT=json).

Values from outside reach log lines everywhere (a record's ``tracestate`` that OpenTelemetry
warns about, an id, a header, an exception's message): a line break in one would start a line of
the sender's choosing (``… CRITICAL workers.door: admin signed in``). So the formatters escape,
not the call sites, which could forget: every control character (C0, DEL, C1: CR, LF, NEL
U+0085 …) and the Unicode line and paragraph separators (U+2028, U+2029) becomes its backslash
escape (``\\n``, ``\\x1b``, ``\\u2028``), in the message and in an exception's message. A record
is one line, and a traceback's own lines follow it as Python writes them: a line that does not
start a record comes from the fleet's code, never from input.

JSON: one object a line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, and, for
a line written inside a span while tracing is on, ``trace_id`` and ``span_id`` (W3C hex), so a
log search finds every line of one trace; ``exception`` holds a traceback when there is one.
orjson escapes C0; the C1 characters and U+2028/U+2029, which JSON allows raw but line readers
split on (Python's ``splitlines``, JavaScript), are written as ``\\uXXXX`` too.
"""

from __future__ import annotations

import logging
import re
import traceback
from datetime import UTC, datetime
from types import TracebackType

import orjson

from topics.envelope import CONTROL_CHARACTERS
from workers import tracing

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
CONTROL = CONTROL_CHARACTERS
"""What a value from outside may not put raw into a log line (what no id may hold)."""
_RAW_IN_JSON = re.compile("[\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_STRUCTURE = (
    "Traceback (most recent call last):\n",
    "\nThe above exception was the direct cause of the following exception:\n\n",
    "\nDuring handling of the above exception, another exception occurred:\n\n",
)
"""The lines Python writes between the frames of a traceback (3.11)."""

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]
"""What ``logging`` hands ``formatException``."""


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(text: str) -> str:
    """``text`` with every control character and line separator as its backslash escape."""
    return CONTROL.sub(_escaped, text) if CONTROL.search(text) else text


def escape_lines(text: str) -> str:
    """``escape`` for text whose line breaks are the fleet's own (a frame of a traceback)."""
    return "\n".join(escape(line) for line in text.split("\n"))


def traceback_text(exc: BaseException) -> str:
    """The traceback as Python writes it, but each exception's message (and note) on one line,
    escaped: the frames and the lines between them keep their breaks."""
    out = []
    for chunk in traceback.TracebackException.from_exception(exc).format():
        if chunk in _STRUCTURE or chunk.lstrip(" |").startswith(("File ", "[Previous line")):
            out.append(escape_lines(chunk))  # the fleet's code: its paths, its source lines
        else:  # an exception's type and message, a note: the message may be anyone's words
            out.append(escape(chunk.removesuffix("\n")) + "\n")
    return "".join(out).removesuffix("\n")


class TextFormatter(logging.Formatter):
    """``time level logger: message``, escaped (the default format)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape(super().formatMessage(record))

    def formatException(self, ei: ExcInfo) -> str:
        if ei[1] is not None:
            return traceback_text(ei[1])
        return escape_lines(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return escape_lines(stack_info)


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON (orjson: no line breaks inside; nor raw separators)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, str] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        ids = tracing.current_ids()
        if ids is not None:
            line["trace_id"], line["span_id"] = ids
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        text = orjson.dumps(line).decode()
        return _RAW_IN_JSON.sub(_json_escape, text) if _RAW_IN_JSON.search(text) else text


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"  # inside a JSON string: the same character, escaped
