"""The topic browser's filters and times: what a record must match (key, header, time window,
text), read from the query and refused by name when malformed; positions carried in links;
a record's time in UTC beside the viewer's zone (a cookie, no script)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from topics.envelope import parse_utc
from topics.errors import InvalidEnvelope, InvalidInput
from workers.http.edge.request import Request
from workers.ports import Record

ZONE_COOKIE = "eventfleet_tz"
MAX_TEXT = 200
_POSITIONS = re.compile(r"[0-9]{1,6}:[0-9]{1,18}(,[0-9]{1,6}:[0-9]{1,18}){0,999}\Z")
_ZONE = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}\Z")


@dataclass(frozen=True, slots=True)
class RecordFilter:
    """What a record must match; every field empty matches every record."""

    key: str = ""
    key_prefix: bool = False
    header: tuple[str, str] | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    text: str = ""

    @property
    def empty(self) -> bool:
        return self == RecordFilter(key_prefix=self.key_prefix)

    def matches(self, record: Record) -> bool:
        if self.key:
            key = (record.key or b"").decode(errors="replace")
            if not (key.startswith(self.key) if self.key_prefix else key == self.key):
                return False
        if self.header is not None:
            name, value = self.header
            if not any(
                k == name and v.decode(errors="replace") == value for k, v in record.headers
            ):
                return False
        stamp = record.timestamp_ms
        if self.since_ms is not None and (stamp is None or stamp < self.since_ms):
            return False
        if self.until_ms is not None and (stamp is None or stamp > self.until_ms):
            return False
        return (
            not self.text
            or self.text.casefold() in record.value.decode(errors="replace").casefold()
        )


def record_filter(request: Request) -> RecordFilter:
    """The filter the query asks; InvalidInput naming the parameter that is malformed."""
    q = request.query
    match = q.get("key_match") or "exact"
    if match not in ("exact", "prefix"):
        raise InvalidInput(f"key_match={match!r} must be exact or prefix.")
    header = None
    raw_header = q.get("header") or ""
    if raw_header:
        name, sep, value = raw_header.partition("=")
        if not sep or not name:
            raise InvalidInput(
                f"header={raw_header[:80]!r} must be name=value (e.g. header=event_type=Paid)."
            )
        header = (name, value)
    since, until = _moment(q.get("since"), "since"), _moment(q.get("until"), "until")
    if since is not None and until is not None and since > until:
        raise InvalidInput(f"since={q.get('since')} is after until={q.get('until')}.")
    key, text = q.get("key") or "", q.get("q") or ""
    for name, value in (("key", key), ("q", text), ("header", raw_header)):
        if len(value) > MAX_TEXT:
            raise InvalidInput(f"{name} is {len(value)} characters long; at most {MAX_TEXT}.")
    return RecordFilter(key, match == "prefix", header, since, until, text)


def _moment(raw: str | None, name: str) -> int | None:
    """Epoch milliseconds of a UTC ISO-8601 time."""
    if not raw:
        return None
    try:
        return int(parse_utc(raw, name).timestamp() * 1000)
    except InvalidEnvelope as e:
        raise InvalidInput(f"query parameter {e}; e.g. 2026-01-01T00:00:00Z.") from e


def positions(raw: str | None, name: str) -> dict[int, int] | None:
    """``0:12,1:40`` as {partition: offset}; InvalidInput naming ``name`` when malformed."""
    if not raw:
        return None
    if not _POSITIONS.match(raw):
        raise InvalidInput(
            f"{name}={raw[:80]!r} must be partition:offset pairs, comma separated (0:12,1:40)."
        )
    return {int(p): int(o) for p, o in (pair.split(":") for pair in raw.split(","))}


def positions_text(at: dict[int, int]) -> str:
    return ",".join(f"{p}:{o}" for p, o in sorted(at.items()))


def zone(request: Request) -> ZoneInfo | None:
    """The viewer's zone from its cookie; None for UTC or a cookie that names no zone."""
    name = request.cookies.get(ZONE_COOKIE, "")
    try:
        return parse_zone(name)
    except InvalidInput:
        return None


def parse_zone(name: str) -> ZoneInfo | None:
    """A zone by its IANA name (None for UTC); InvalidInput naming ``tz`` otherwise."""
    if name in ("", "UTC", "Etc/UTC"):
        return None
    if len(name) > 64 or not _ZONE.match(name):
        raise InvalidInput(f"tz={name[:80]!r} is no IANA zone name (e.g. Europe/Berlin).")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as e:
        raise InvalidInput(f"tz={name!r} is no IANA zone name (e.g. Europe/Berlin).") from e


def when(timestamp_ms: int | None, viewer: ZoneInfo | None) -> str:
    """A record's time: UTC, then the viewer's zone (HTML, escaped by construction)."""
    if timestamp_ms is None or timestamp_ms < 0:
        return "—"
    moment = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    text = moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    if viewer is None:
        return text
    local = moment.astimezone(viewer)
    return (
        f'<span class="utc">{text}</span><br><span class="local">'
        f"{local.strftime('%Y-%m-%d %H:%M:%S %Z')}</span>"
    )
