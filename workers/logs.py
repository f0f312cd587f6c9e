"""Log lines as JSON objects (EVENTFLEET_LOG_FORMAT=json), naming the trace they were written in.

One object a line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, and, for a
line written inside a span while tracing is on, ``trace_id`` and ``span_id`` (W3C hex), so a
log search finds every line of one trace; ``exception`` holds a traceback when there is one.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import orjson

from workers import tracing


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON (orjson: no line breaks inside)."""

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
        return orjson.dumps(line).decode()
