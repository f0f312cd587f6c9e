"""The topic browser's filters, positions, zones and retention as a reader says it: each match
rule alone and together, malformed values refused naming their parameter."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from topics.errors import InvalidInput
from workers.http.console.record_filter import (
    RecordFilter,
    parse_zone,
    positions,
    positions_text,
    when,
)
from workers.http.console.topics import retention
from workers.ports import Record

STAMP = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def record(key: bytes | None = b"order:o-1", value: bytes = b'{"Total": 5}') -> Record:
    return Record("t", 0, 7, key, value, (("event_type", b"OrderPaid"),), STAMP)


def test_an_empty_filter_matches_every_record() -> None:
    assert RecordFilter().empty and RecordFilter(key_prefix=True).empty
    assert RecordFilter().matches(record(key=None, value=b"\xff"))


@pytest.mark.parametrize(
    ("rule", "matched"),
    [
        (RecordFilter(key="order:o-1"), True),
        (RecordFilter(key="order:o"), False),  # exact unless asked for a prefix
        (RecordFilter(key="order:o", key_prefix=True), True),
        (RecordFilter(key="order:x", key_prefix=True), False),
        (RecordFilter(header=("event_type", "OrderPaid")), True),
        (RecordFilter(header=("event_type", "OrderPlaced")), False),
        (RecordFilter(header=("event_id", "OrderPaid")), False),
        (RecordFilter(since_ms=STAMP, until_ms=STAMP), True),
        (RecordFilter(since_ms=STAMP + 1), False),
        (RecordFilter(until_ms=STAMP - 1), False),
        (RecordFilter(text="total"), True),  # any case
        (RecordFilter(text="totals"), False),
        (RecordFilter(key="order:o-1", header=("event_type", "OrderPaid"), text="5"), True),
        (RecordFilter(key="order:o-1", header=("event_type", "OrderPaid"), text="6"), False),
    ],
)
def test_each_rule_alone_and_together(rule: RecordFilter, matched: bool) -> None:
    assert not rule.empty
    assert rule.matches(record()) is matched


def test_a_record_without_a_time_is_outside_every_window() -> None:
    unstamped = Record("t", 0, 1, b"k", b"v")
    assert not RecordFilter(since_ms=0).matches(unstamped)
    assert not RecordFilter(until_ms=STAMP).matches(unstamped)


def test_positions_round_trip_and_malformed_ones_name_their_parameter() -> None:
    assert positions("3:40,0:12", "before") == {3: 40, 0: 12}
    assert positions_text({3: 40, 0: 12}) == "0:12,3:40"
    assert positions("", "before") is None and positions(None, "before") is None
    for bad in ("0", "0:", ":1", "a:1", "0:1,", "0:-1", "0:1;1:2", "0:1234567890123456789"):
        with pytest.raises(InvalidInput, match=r"^from="):
            positions(bad, "from")


def test_zones_by_iana_name_utc_alone_and_nothing_else() -> None:
    assert parse_zone("") is None and parse_zone("UTC") is None
    assert parse_zone("Europe/Berlin") == ZoneInfo("Europe/Berlin")
    for bad in ("Mars/Olympus", "../etc/passwd", "Europe/Berlin<b>", "x" * 300):
        with pytest.raises(InvalidInput, match=r"^tz="):
            parse_zone(bad)


def test_times_show_utc_then_the_viewers_zone() -> None:
    assert when(STAMP, None) == "2026-01-01 00:00:00.000Z"
    shown = when(STAMP + 5, ZoneInfo("Asia/Tokyo"))
    assert shown.startswith('<span class="utc">2026-01-01 00:00:00.005Z</span><br>')
    assert "2026-01-01 09:00:00 JST" in shown
    assert when(None, None) == "—" and when(-1, None) == "—"


def test_retention_as_a_reader_says_it() -> None:
    assert retention("-1") == "forever"
    assert retention("604800000") == "7 d"
    assert retention("3600000") == "1 h"
    assert retention("90000") == "90 s"
    assert retention("1500") == "1500 ms"
    assert retention(None) == "—"
    assert retention("soon") == "soon"
