"""Server-Sent Events, parsed line by line as the WHATWG spec reads a stream."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["SseMessage", "SseParser"]


@dataclass(frozen=True, slots=True)
class SseMessage:
    """One dispatched message: its ``event`` name (``message`` when unnamed), ``data`` and the
    stream's last event id as of it."""

    event: str
    data: str
    id: str | None


@dataclass(slots=True)
class SseParser:
    """Feed it lines (without their end); it returns a message at each blank line that ends
    one with data. Comments (``: heartbeat``) and unknown fields are ignored."""

    last_id: str | None = None
    retry_ms: int | None = None
    _event: str = ""
    _data: list[str] = field(default_factory=list)

    def line(self, line: str) -> SseMessage | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self.last_id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> SseMessage | None:
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return SseMessage(event or "message", "\n".join(data), self.last_id)
