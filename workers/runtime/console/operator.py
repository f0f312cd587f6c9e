"""The console's operator pages: consumer groups and partitions, and a console page for any
unknown console path (a 404 page, not the API's JSON)."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from topics.errors import NotFound
from workers.adapters.kafka.lag import PartitionLag
from workers.runtime.console.html import esc, table
from workers.runtime.console.views import Console, natural_key
from workers.runtime.lag import read_lag_once


class OperatorPages:
    """Groups and partitions; the console's own 404."""

    def __init__(self, console: Console) -> None:
        self.console = console

    async def groups(self, request: web.Request) -> web.Response:
        fleet = self.console.fleet
        rt = fleet.runtime
        if fleet.lag is not None and fleet.lag.last_at is not None:
            lags, read_at = fleet.lag.last, fleet.lag.last_at
            source = "the lag role in this process, every EVENTFLEET_LAG_INTERVAL_S"
        else:
            lags, read_at = await read_lag_once(rt.kafka, rt.settings, rt.domains), None
            source = "read from the brokers now (no lag role runs in this process)"
        when = (
            datetime.fromtimestamp(read_at, UTC).isoformat(timespec="seconds")
            if read_at is not None
            else "now"
        )
        body = (
            f'<p class="muted" id="source">{esc(source)}; read {esc(when)}</p>'
            + _group_summary(lags)
            + "<h2>Partitions</h2>"
            + _partitions(lags)
        )
        return self.console.html("Groups & partitions", body)

    async def not_found(self, request: web.Request) -> web.Response:
        raise NotFound(
            f"the console has no page {request.path!r}; start from the overview (/console)."
        )


def _group_summary(lags: list[PartitionLag]) -> str:
    totals: dict[str, list[int]] = {}
    for lag in lags:
        entry = totals.setdefault(lag.group, [0, 0])
        entry[0] += lag.lag
        entry[1] += 1
    if not totals:
        return '<p id="groups">no consumer group of this fleet has committed an offset yet</p>'
    rows = [
        (esc(group), esc(total), esc(count))
        for group, (total, count) in sorted(totals.items(), key=lambda g: natural_key(g[0]))
    ]
    return "<h2>Groups</h2>" + table(("group", "lag (events)", "partitions"), rows, css_id="groups")


def _partitions(lags: list[PartitionLag]) -> str:
    ordered = sorted(
        lags, key=lambda p: (natural_key(p.group), natural_key(p.topic), p.partition)
    )
    rows = [
        (esc(p.group), esc(p.topic), esc(p.partition), esc(p.committed), esc(p.high_water),
         f'<span class="{"bad" if p.lag else "good"}">{esc(p.lag)}</span>')
        for p in ordered
    ]  # fmt: skip
    headings = ("group", "topic", "partition", "committed offset", "end offset", "lag")
    return table(headings, rows, css_id="partitions")
