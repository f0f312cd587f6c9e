"""The console's topics in the manner of Kafka UI: the list (partitions, replication, retention,
cleanup policy, records kept, the roles that read each), one topic's settings and partition
offsets, its records filtered by key, header, time and text in bounded scans (its tail:
``workers.http.console.tail``; no script anywhere: the Content-Security-Policy allows none).

Every page reads only what it shows: the admin API for settings and offsets, one bounded range
per partition for records (times found with ``offsets_for_times``). Kafka down is the console's
503 page (StreamUnavailable), a malformed parameter its 400 page naming the parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from zoneinfo import ZoneInfo

from topics.catalog import TopicNames, TopicSpec
from topics.errors import InvalidInput, NotFound
from workers.adapters.kafka.topic_reads import RangeRead, TopicState, describe_topics, read_range
from workers.http.console.browse import BrowsePages, page_limit, records_table
from workers.http.console.html import esc, link, path, table
from workers.http.console.record_filter import (
    ZONE_COOKIE,
    RecordFilter,
    parse_zone,
    positions,
    positions_text,
    record_filter,
    zone,
)
from workers.http.console.topic_forms import filter_form, topic_links, with_query
from workers.http.console.views import Console
from workers.http.edge.request import Request
from workers.http.edge.responses import Response
from workers.ports import Record
from workers.runtime.connections import fleet_catalog
from workers.runtime.lag import measured_groups

READ_TIMEOUT_S = 10.0
SCAN_MAX = 5000
"""Records one filtered request reads at most (shared among the partitions scanned); ``scan``
asks fewer."""
ZONE_MAX_AGE_S = 365 * 24 * 3600


class TopicPages:
    """``/console/topics`` and each topic's records, settings and tail: read-only pages."""

    def __init__(self, console: Console, browse: BrowsePages) -> None:
        self.console = console
        self.browse = browse

    def _catalog(self) -> list[TopicSpec]:
        rt = self.console.rt
        return fleet_catalog(rt.settings, rt.domains)

    async def _describe(self, names: Sequence[str]) -> list[TopicState]:
        return await describe_topics(self.console.rt.kafka, names, timeout_s=READ_TIMEOUT_S)

    async def topics(self, request: Request) -> Response:
        specs = self._catalog()
        states = await self._describe([s.name for s in specs])
        reading = readers(self.console)
        rows = [
            _topic_row(spec, state, reading.get(spec.name, ()))
            for spec, state in zip(specs, states, strict=True)
        ]
        headings = (
            "topic",
            "partitions",
            "replication",
            "in sync",
            "retention",
            "cleanup",
            "records",
            "read by",
            "",
        )
        body = (
            f'<p class="muted">{len(specs)} topics the fleet writes; records: offsets kept '
            "(end - start, summed over partitions)</p>" + table(headings, rows, css_id="topics")
        )
        return self.console.html("Topics", body)

    async def topic_settings(self, request: Request) -> Response:
        name = self.browse.topic_name(request)
        [state] = await self._describe([name])
        if not state.exists:
            raise NotFound(f"{name} is in the fleet's catalog but not on the brokers yet.")
        spec = next(s for s in self._catalog() if s.name == name)
        wanted = spec.configs()
        rows = []
        for key in sorted(state.configs):
            entry = state.configs[key]
            value = "(sensitive)" if entry.sensitive else (entry.value or "")
            expect = wanted.get(key)
            verdict = ""
            if expect is not None:
                ok = expect == entry.value
                verdict = f'<span class="{"good" if ok else "bad"}">catalog: {esc(expect)}</span>'
            rows.append(
                (
                    f"<code>{esc(key)}</code>",
                    f"<code>{esc(value)}</code>",
                    '<span class="muted">default</span>' if entry.default else "set",
                    verdict,
                )
            )
        parts = [
            (
                esc(p.partition),
                esc("—" if p.leader is None else p.leader),
                esc(p.replicas),
                esc(p.in_sync),
                esc(p.earliest),
                esc(p.end),
                esc(p.records),
            )
            for p in state.partitions
        ]
        body = (
            topic_links(name, "settings")
            + f'<p id="summary">{len(state.partitions)} partitions, replication '
            f"{state.replication}, {state.records} records kept</p>"
            + "<h2>Partitions</h2>"
            + table(
                (
                    "partition",
                    "leader",
                    "replicas",
                    "in sync",
                    "start offset",
                    "end offset",
                    "records",
                ),
                parts,
                css_id="partitions",
            )
            + "<h2>Configs</h2>"
            + table(("config", "value", "source", "the fleet's catalog"), rows, css_id="configs")
        )
        return self.console.html(f"Topic {name}: settings", body)

    async def topic(self, request: Request) -> Response:
        """The newest records, or (any filter given) a bounded scan for the matching ones."""
        name = self.browse.topic_name(request)
        match = record_filter(request)
        viewer = zone(request)
        form = filter_form(request, name)
        if match.empty:
            body = await self.browse.newest(request, name, viewer)
        else:
            body = await self._scan(request, name, match, viewer)
        return self.console.html(f"Topic {name}", topic_links(name, "records") + form + body)

    async def _scan(
        self, request: Request, name: str, match: RecordFilter, viewer: ZoneInfo | None
    ) -> str:
        """Newest first within the window: each partition's newest share of SCAN_MAX read, the
        matches shown newest first; ``before`` (a cursor per partition) continues older."""
        limit = page_limit(request)
        partition = _partition(request)
        before = positions(request.query.get("before"), "before")
        budget = _scan_bound(request.query.get("scan"))
        read = await read_range(
            self.console.rt.kafka,
            name,
            budget=budget,
            partition=partition,
            before=before,
            since_ms=match.since_ms,
            until_ms=match.until_ms,
            timeout_s=READ_TIMEOUT_S,
        )
        if partition is not None and not read.ranges:
            raise InvalidInput(f"{name} has no partition {partition}.")
        found = [r for r in read.records if match.matches(r)]
        found.sort(key=lambda r: (r.timestamp_ms or 0, r.partition, r.offset), reverse=True)
        shown, rest = found[:limit], found[limit:]
        cursor = _cursor(read, rest)
        more = any(cursor[p.partition] > p.low for p in read.ranges)
        window = sum(max(0, p.high - p.low) for p in read.ranges)
        summary = (
            f"{len(shown)} shown of {len(found)} matching in {read.scanned} records read "
            f"(of {window} in the window; at most {budget} read a request), newest first"
        )
        if more:
            href = request.path + "?" + with_query(request, before=positions_text(cursor))
            cut = (
                f'<p class="note" id="cut">The scan stopped at its bound: older records of the '
                f'window were not read. <a id="continue" href="{esc(href)}">continue with older '
                "records</a></p>"
            )
        else:
            cut = '<p class="muted" id="whole">the whole window was read</p>'
        return f'<p id="count">{esc(summary)}</p>{cut}' + records_table(shown, viewer)

    async def choose_zone(self, request: Request) -> Response:
        """``?tz=Area/City&next=/console/...``: the zone times are shown in beside UTC, kept in
        a cookie (UTC clears it)."""
        name = request.query.get("tz") or "UTC"
        chosen = parse_zone(name)
        back = request.query.get("next") or "/console/topics"
        if not back.startswith("/console/") or back.startswith("//") or "\\" in back:
            back = "/console/topics"
        response = Response(b"", 303, content_type=None)
        response.set_header("Location", back)
        if chosen is None:
            response.del_cookie(ZONE_COOKIE, path="/console")
        else:
            response.set_cookie(
                ZONE_COOKIE,
                name,
                path="/console",
                max_age=ZONE_MAX_AGE_S,
                samesite="Lax",
                secure=request.secure,
            )
        return response


def readers(console: Console) -> dict[str, list[str]]:
    """Which of the fleet's roles read each topic: the consumer groups the roles join, the
    snapshotter's rule table, and the dead-letter desk (the console and ``eventfleet dlq``)."""
    settings, domains = console.rt.settings, console.rt.domains
    prefix = f"{settings.group_id}-"
    found: dict[str, list[str]] = {}
    for group, topics in measured_groups(settings, domains).items():
        role = group.removeprefix(prefix)
        if role == "all":  # one process running every role: each is listed already
            continue
        for topic in topics:
            found.setdefault(topic, []).append(role)
    names = TopicNames(settings.topic_prefix)
    found.setdefault(names.snapshot_rules, []).append("snapshotter (its rule table)")
    found.setdefault(names.dlq, []).append("dead-letter desk (no group)")
    return found


def _topic_row(spec: TopicSpec, state: TopicState, reading: Sequence[str]) -> tuple[str, ...]:
    name = link(path("topics", spec.name), spec.name)
    if not state.exists:
        return (name, '<span class="bad">not created</span>', "", "", "", "", "", "", "")
    in_sync = min((p.in_sync for p in state.partitions), default=0)
    links = (
        link(path("topics", spec.name, "settings"), "settings")
        + " "
        + link(path("topics", spec.name, "tail"), "tail")
    )
    return (
        name,
        esc(len(state.partitions)),
        esc(state.replication),
        esc(in_sync),
        esc(retention(state.config("retention.ms"))),
        esc(state.config("cleanup.policy") or "—"),
        esc(f"{state.records:,}"),
        esc(", ".join(reading) or "—"),
        links,
    )


def retention(raw: str | None) -> str:
    """``retention.ms`` as a reader says it: 7 d, 12 h, forever."""
    if raw is None or not raw.lstrip("-").isdigit():
        return raw or "—"
    ms = int(raw)
    if ms < 0:
        return "forever"
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("min", 60_000), ("s", 1000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size} {unit}"
    return f"{ms} ms"


def _partition(request: Request) -> int | None:
    raw = request.query.get("partition")
    if not raw:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 6:
        raise InvalidInput(f"partition={raw[:40]!r} must be a whole number.")
    return int(raw)


def _scan_bound(raw: str | None) -> int:
    if not raw:
        return SCAN_MAX
    if not raw.isascii() or not raw.isdigit() or len(raw) > 6 or not 1 <= int(raw) <= SCAN_MAX:
        raise InvalidInput(f"scan={raw[:40]!r} must be a whole number from 1 to {SCAN_MAX}.")
    return int(raw)


def _cursor(read: RangeRead, rest: Sequence[Record]) -> dict[int, int]:
    """Where each partition goes on: past the newest match not shown, else below what was
    read; every record at or above it was shown or read and not matched."""
    cursor = {p.partition: p.start for p in read.ranges}
    for r in rest:
        cursor[r.partition] = max(cursor[r.partition], r.offset + 1)
    return cursor
