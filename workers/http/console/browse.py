"""The console's topic browser (the topics the fleet writes, newest first, decoded, with headers)
and its diffs (the snapshot against replay, and the state between two versions)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from zoneinfo import ZoneInfo

import orjson

from topics.errors import InvalidInput, NotFound
from topics.jsonvalue import Json, JsonObject
from workers.http.console.html import esc, json_block, link, path, table
from workers.http.console.record_filter import when
from workers.http.console.views import Console, whole_query
from workers.http.edge.request import Request
from workers.http.edge.responses import Response
from workers.ports import Record, TopicWindow
from workers.runtime.connections import fleet_catalog

TOPIC_PAGE = 100
TOPIC_PAGE_MAX = 500
READ_TIMEOUT_S = 10.0
Flat = JsonObject


class BrowsePages:
    """Topics and diffs: read-only pages."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def _topics(self) -> list[str]:
        rt = self.console.rt
        return [spec.name for spec in fleet_catalog(rt.settings, rt.domains)]

    def topic_name(self, request: Request) -> str:
        """The path's topic, NotFound unless the fleet writes it."""
        name = request.params["topic"]
        if name not in self._topics():
            raise NotFound(f"the fleet writes no topic {name!r}; the topics page lists them.")
        return name

    async def topic(self, request: Request) -> Response:
        name = self.topic_name(request)
        return self.console.html(f"Topic {name}", await self.newest(request, name))

    async def newest(self, request: Request, name: str, viewer: ZoneInfo | None = None) -> str:
        """Newest first. Without ``partition``: the newest records of every partition, by
        time. With ``partition=P``: that partition by offset, older pages by ``before_offset``.
        Only the window shown is read, never the topic."""
        partition = whole_query(request, "partition", None)
        before = whole_query(request, "before_offset", None)
        limit = page_limit(request)
        if before is not None and partition is None:
            raise InvalidInput("before_offset pages one partition: give partition=P with it.")
        windows = await self.console.rt.adapters.stream.read_window(
            name,
            limit=limit,
            partition=partition,
            before_offset=before,
            timeout_s=READ_TIMEOUT_S,
        )
        if partition is not None and not windows:
            raise InvalidInput(f"{name} has no partition {partition}.")
        shown = [r for w in windows for r in w.records]
        if partition is None:
            shown.sort(key=lambda r: (r.timestamp_ms or 0, r.partition, r.offset), reverse=True)
        else:
            shown.sort(key=lambda r: r.offset, reverse=True)
        shown = shown[:limit]
        if partition is None:
            count = f"the newest {len(shown)} records of {len(windows)} partitions, newest first"
        else:
            count = f"{len(shown)} records of partition {partition}, newest offset first"
        return (
            f'<p id="count">{esc(count)}</p>'
            + _pager(name, partition, windows, shown, limit)
            + records_table(shown, viewer)
        )

    async def diff(self, request: Request) -> Response:
        """``?from=N&to=M``: the state at N against the state at M; without: the snapshot
        against the state replayed from scratch to the snapshot's version."""
        rt = self.console.rt
        domain = rt.domains.get(request.params["aggregate_type"])
        aggregate_id = request.params["aggregate_id"]
        low = whole_query(request, "from", None)
        high = whole_query(request, "to", None)
        if (low is None) != (high is None):
            raise InvalidInput("give both from=N and to=M, or neither (snapshot against replay).")
        if low is not None and high is not None:
            before = await rt.loader.exactly_at(domain, aggregate_id, version=low)
            after = await rt.loader.exactly_at(domain, aggregate_id, version=high)
            title, left, right = f"version {low} → {high}", before.state, after.state
        else:
            snapshot = await rt.snapshots.load((domain.name, aggregate_id))
            if snapshot is None:
                raise NotFound(f"{domain.name} {aggregate_id} has no snapshot to compare.")
            scratch = await rt.loader.exactly_at(domain, aggregate_id, version=snapshot.version)
            title = f"snapshot (version {snapshot.version}) → replay from scratch"
            left, right = snapshot.state, scratch.state
        changes = diff(left, right)
        rows = [
            (f"<code>{esc(p)}</code>", esc(kind), json_block(a), json_block(b))
            for p, kind, a, b in changes
        ]
        verdict = (
            '<p id="verdict" class="good">identical</p>'
            if not changes
            else f'<p id="verdict" class="bad">{len(changes)} differences</p>'
        )
        back = link(path("aggregates", domain.name, aggregate_id), f"{domain.name} {aggregate_id}")
        body = (
            f"<p>{back}: {esc(title)}</p>"
            + verdict
            + table(("path", "change", "before", "after"), rows, css_id="diff")
        )
        return self.console.html(f"Diff {domain.name} {aggregate_id}", body)


def _pager(
    topic: str, partition: int | None, windows: list[TopicWindow], shown: list[Record], limit: int
) -> str:
    """Links to each partition's older records (the cursor: the lowest offset shown of it),
    to the newest page and to every partition."""
    links = []
    size = "" if limit == TOPIC_PAGE else f"&limit={limit}"
    lowest: dict[int, int] = {}
    for r in shown:
        lowest[r.partition] = min(r.offset, lowest.get(r.partition, r.offset))
    for w in windows:
        cursor = lowest.get(w.partition, w.start if partition is not None else w.end)
        if cursor > w.earliest:
            href = f"{path('topics', topic)}?partition={w.partition}&before_offset={cursor}{size}"
            links.append(
                f'<a class="older" href="{esc(href)}">older in partition {w.partition}</a>'
            )
    if partition is not None:
        links.append(link(path("topics", topic), "newest of every partition"))
        newest = f"{path('topics', topic)}?partition={partition}{size}"
        links.append(link(newest, "newest of this partition"))
    return f'<p id="pages">{" · ".join(links) or "no older records"}</p>'


def diff(left: Json, right: Json) -> list[tuple[str, str, Json, Json]]:
    """Every leaf that differs, as (path, added | removed | changed, before, after)."""
    a, b = _flatten(left), _flatten(right)
    out: list[tuple[str, str, Json, Json]] = []
    for key in sorted(a.keys() | b.keys()):
        if key not in a:
            out.append((key, "added", None, b[key]))
        elif key not in b:
            out.append((key, "removed", a[key], None))
        elif orjson.dumps(a[key], default=str) != orjson.dumps(b[key], default=str):
            out.append((key, "changed", a[key], b[key]))
    return out


def _flatten(value: Json, prefix: str = "$") -> Flat:
    if isinstance(value, Mapping) and value:
        flat: Flat = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}"))
        return flat
    if isinstance(value, list) and value:
        flat = {}
        for index, item in enumerate(value):
            flat.update(_flatten(item, f"{prefix}[{index}]"))
        return flat
    return {prefix: value}


def page_limit(request: Request) -> int:
    """``limit``: records shown, 1 to TOPIC_PAGE_MAX (TOPIC_PAGE when not given)."""
    limit = whole_query(request, "limit", TOPIC_PAGE)
    if not 0 < limit <= TOPIC_PAGE_MAX:
        raise InvalidInput(f"limit={limit} must be between 1 and {TOPIC_PAGE_MAX}.")
    return limit


RECORD_HEADINGS = ("partition", "offset", "timestamp", "key", "value", "headers")


def records_table(
    shown: Sequence[Record], viewer: ZoneInfo | None, *, css_id: str = "records"
) -> str:
    """Records as rows: position, time (UTC, and the viewer's zone), key, decoded value,
    headers."""
    rows = [
        (
            esc(r.partition),
            esc(r.offset),
            when(r.timestamp_ms, viewer),
            esc((r.key or b"").decode(errors="replace")),
            _decoded(r.value),
            _headers(r),
        )
        for r in shown
    ]
    return table(RECORD_HEADINGS, rows, css_id=css_id)


def _decoded(value: bytes) -> str:
    """JSON pretty-printed; anything else as (escaped) text."""
    try:
        return json_block(orjson.loads(value))
    except orjson.JSONDecodeError:
        return f"<pre>{esc(value.decode(errors='replace')[:2000])}</pre>"


def _headers(record: Record) -> str:
    if not record.headers:
        return "—"
    return "".join(
        f"<div><code>{esc(k)}</code>: {esc(v.decode(errors='replace'))}</div>"
        for k, v in record.headers
    )
