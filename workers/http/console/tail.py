"""A topic's tail without script: the page reloads itself (``<meta http-equiv="refresh">``),
each reload one bounded read of the records since the positions the tail began at, carried in
its address. No connection is held open (a streamed page would hold one per viewer, stall
behind a buffering proxy and keep a draining process waiting); it stops after TAIL_FOR_S."""

from __future__ import annotations

import time

from topics.errors import InvalidInput
from workers.adapters.kafka.topic_reads import read_range
from workers.http.console.browse import BrowsePages, records_table
from workers.http.console.html import esc
from workers.http.console.record_filter import positions, positions_text, record_filter, zone
from workers.http.console.topic_forms import topic_links, with_query, zone_form
from workers.http.console.views import Console
from workers.http.edge.request import Request
from workers.http.edge.responses import Redirect, Response

READ_TIMEOUT_S = 10.0
TAIL_ROWS = 100
TAIL_REFRESH_S = 2
TAIL_FOR_S = 600
"""A tail reloads itself this long, then stops with a link to follow on."""


class TopicTail:
    """``/console/topics/{topic}/tail``: read-only."""

    def __init__(self, console: Console, browse: BrowsePages) -> None:
        self.console = console
        self.browse = browse

    async def topic_tail(self, request: Request) -> Response:
        """The records that arrived since the tail began (``from``: each partition's end
        then), newest first, the newest TAIL_ROWS; the page reloads every TAIL_REFRESH_S for
        TAIL_FOR_S after ``started``, then stops with a link to follow on."""
        name = self.browse.topic_name(request)
        match = record_filter(request)
        start = positions(request.query.get("from"), "from")
        started = _started(request.query.get("started"))
        kafka = self.console.rt.kafka
        if start is None or started is None:
            read = await read_range(kafka, name, per_partition=1, timeout_s=READ_TIMEOUT_S)
            ends = positions_text({p.partition: p.end for p in read.ranges})
            raise Redirect(
                request.path
                + "?"
                + with_query(request, **{"from": ends or "0:0", "started": str(int(time.time()))})
            )
        read = await read_range(
            kafka, name, per_partition=TAIL_ROWS, after=start, timeout_s=READ_TIMEOUT_S
        )
        arrived = sum(max(0, p.high - p.low) for p in read.ranges)
        found = [r for r in read.records if match.matches(r)]
        found.sort(key=lambda r: (r.timestamp_ms or 0, r.partition, r.offset), reverse=True)
        following = time.time() - started < TAIL_FOR_S
        if following:
            state = (
                f'<p class="note" id="following">following: this page reloads every '
                f"{TAIL_REFRESH_S} s for {TAIL_FOR_S // 60} minutes from when the tail began</p>"
            )
        else:
            again = request.path + "?" + with_query(request, **{"from": "", "started": ""})
            state = (
                f'<p class="note" id="stopped">the tail stopped after {TAIL_FOR_S // 60} minutes.'
                f' <a id="follow-again" href="{esc(again)}">follow again from now</a></p>'
            )
        summary = (
            f"{_records(arrived)} arrived since the tail began; {len(found[:TAIL_ROWS])} shown "
            f"{'matching the filter ' if not match.empty else ''}(at most {TAIL_ROWS}), "
            "newest first"
        )
        body = (
            topic_links(name, "tail")
            + state
            + f'<p id="count">{esc(summary)}</p>'
            + records_table(found[:TAIL_ROWS], zone(request), css_id="tail")
            + zone_form(request, request.path_qs)
        )
        return self.console.html(
            f"Tail {name}", body, refresh_s=TAIL_REFRESH_S if following else None
        )


def _started(raw: str | None) -> float | None:
    if not raw:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 12:
        raise InvalidInput(f"started={raw[:40]!r} must be a whole number (seconds since 1970).")
    return float(raw)


def _records(count: int) -> str:
    return "1 record" if count == 1 else f"{count} records"
