"""The auditor: does every stored history, snapshot, view, mark and downstream topic agree?

It replays each aggregate from the store and checks that the history is a valid path of its
domain (versions 1..n, every event's data and transition accepted, an event that expected a
version stored right after it, the fold succeeds), that
each snapshot and projection view equals the replay at its version, that marks name the
stored head (beyond a bound for events in flight), and that every routed topic carries the
stored events of each aggregate in version order. Doubles on a topic (at-least-once copies)
are warnings; everything else is an error. Pure logic over the ports.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from snapshot_rules.domain import Domain, Domains, Mode, Route
from snapshot_rules.projection import Projection, ViewDoc, advance
from snapshot_rules.replay import Folded, replay
from topics.envelope import Event
from topics.errors import EventfleetError, InvalidInput, ReplayFailed
from topics.jsonvalue import JsonObject
from workers.ports import (
    AggregateRef,
    MarkPeek,
    ParkedEntry,
    ParkedEvents,
    ScannableEvents,
    SnapshotStore,
    ViewStore,
)

WARNINGS = frozenset({"double", "parked"})
"""Doubles on a topic are at-least-once copies; a parked aggregate (its head could not be
stored, the rest waits in order) is a known state an operator resolves, never a gap."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One disagreement: its kind, where, and a sentence."""

    kind: str
    aggregate_type: str
    aggregate_id: str
    detail: str

    @property
    def error(self) -> bool:
        return self.kind not in WARNINGS


@dataclass(slots=True)
class AuditReport:
    """What the audit looked at and what it found."""

    aggregates: int = 0
    events: int = 0
    checked: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.error for f in self.findings)

    def count(self, what: str, n: int = 1) -> None:
        self.checked[what] = self.checked.get(what, 0) + n

    def as_dict(self) -> JsonObject:
        kinds: dict[str, int] = {}
        for finding in self.findings:
            kinds[finding.kind] = kinds.get(finding.kind, 0) + 1
        return {
            "ok": self.ok,
            "aggregates": self.aggregates,
            "events": self.events,
            "checked": self.checked,
            "findings_by_kind": kinds,
            "findings": [
                {
                    "kind": f.kind,
                    "aggregate_type": f.aggregate_type,
                    "aggregate_id": f.aggregate_id,
                    "detail": f.detail,
                }
                for f in self.findings
            ],
        }


TopicRead = Callable[[str], Awaitable[Sequence[Event]]]
"""Reads a topic from its start to its current end, decoded (undecodable records skipped)."""


@dataclass(frozen=True, slots=True)
class AuditSources:
    """Where the auditor looks; any source left out is not checked."""

    events: ScannableEvents
    snapshots: SnapshotStore | None = None
    views: Mapping[str, ViewStore] = field(default_factory=dict)
    marks: MarkPeek | None = None
    read_topic: TopicRead | None = None
    topic_name: Callable[[str], str] = lambda base: base
    parked: ParkedEvents | None = None


class Auditor:
    """Checks the fleet's stores and topics against replay of the event store."""

    def __init__(self, domains: Domains, sources: AuditSources, *, mark_bound_s: float = 2.0):
        self._domains = domains
        self._sources = sources
        self._mark_bound_s = mark_bound_s

    async def audit(
        self, aggregate_types: Sequence[str] | None = None, *, refs: Sequence[AggregateRef] = ()
    ) -> AuditReport:
        """Audit every aggregate of ``aggregate_types`` (default: all enabled), or just ``refs``."""
        names = list(aggregate_types or self._domains.names())
        for name in names:
            self._domains.get(name)  # an unknown type fails before anything is read
        report = AuditReport()
        histories: dict[AggregateRef, list[Event]] = {}
        unseen: list[_Unseen] = []
        parked = await self._parked(names, refs, report)
        async for ref, history in self._histories(names, refs):
            histories[ref] = history
            report.aggregates += 1
            report.events += len(history)
            await self._check_aggregate(self._domains.get(ref[0]), ref, history, report, unseen)
        # A parked aggregate's mark may name an event waiting in its queue: not a stale mark.
        marked = {ref: h for ref, h in histories.items() if ref not in parked}
        await self._check_marks_and_views(marked, unseen, report)
        await self._check_topics(names, histories, report, whole=not refs)
        return report

    async def _parked(
        self, names: list[str], refs: Sequence[AggregateRef], report: AuditReport
    ) -> dict[AggregateRef, ParkedEntry]:
        """Parked aggregates among those audited, each reported once as what it is (a warning):
        its stored history ends before the head of its queue; nothing after it is missing."""
        if self._sources.parked is None:
            return {}
        keys = [f"{t}:{i}" for t, i in refs] if refs else None
        found: dict[AggregateRef, ParkedEntry] = {}
        for key, (head, last) in sorted((await self._sources.parked.heads(keys)).items()):
            aggregate_type, _, aggregate_id = key.partition(":")
            if aggregate_type not in names:
                continue
            found[(aggregate_type, aggregate_id)] = head
            waiting = last - head.seq + 1
            report.findings.append(
                Finding(
                    "parked",
                    aggregate_type,
                    aggregate_id,
                    (
                        f"parked behind {head.source} ({head.reason}); {waiting} events wait in "
                        "order for an operator to replay or skip the head (eventfleet dlq parked): "
                        "the stored history is whole up to it, not a gap"
                    ),
                )
            )
        report.count("parked", len(found))
        return found

    async def _histories(
        self, names: list[str], refs: Sequence[AggregateRef]
    ) -> AsyncIterator[tuple[AggregateRef, list[Event]]]:
        if refs:
            for ref in refs:
                yield ref, await self._sources.events.select(ref)
            return
        current: AggregateRef | None = None
        history: list[Event] = []
        async for event in self._sources.events.scan(names):
            ref = (event.aggregate_type, event.aggregate_id)
            if ref != current:
                if current is not None:
                    yield current, history
                current, history = ref, []
            history.append(event)
        if current is not None:
            yield current, history

    async def _check_aggregate(
        self,
        domain: Domain,
        ref: AggregateRef,
        history: list[Event],
        report: AuditReport,
        unseen: list[_Unseen],
    ) -> None:
        def find(kind: str, detail: str) -> None:
            report.findings.append(Finding(kind, ref[0], ref[1], detail))

        versions = [e.version for e in history]
        if versions != list(range(1, len(history) + 1)):
            find("gap", f"versions are {_short(versions)}, not 1..{len(history)}")
            return
        report.count("histories")
        try:  # the current version's schema and rules judge an old event, as the store did
            history = [domain.upcast(event) for event in history]
        except ReplayFailed as e:
            find("invalid_history", str(e))
            return
        states = self._valid_path(domain, ref, history, find)
        if states is None:
            return
        await self._check_snapshot(ref, history, states, report, find)
        await self._check_views(domain, ref, history, report, find, unseen)

    def _valid_path(
        self,
        domain: Domain,
        ref: AggregateRef,
        history: list[Event],
        find: Callable[[str, str], None],
    ) -> list[Folded] | None:
        """The state after each version, or None when the history is not a valid path."""
        states = [Folded(None, 0)]
        current: str | None = None
        for event in history:
            expected = event.expected_version
            if expected is not None and expected != len(states) - 1:
                find(
                    "invalid_history",
                    f"version {event.version} ({event.type}) was stored "
                    f"although it expected the aggregate at version {expected}",
                )
                return None
            try:
                domain.check_data(event.type, event.data)
                if domain.mode is not Mode.STORAGE:
                    domain.check_transition(ref[1], current, event.type)
                if domain.mode is Mode.SYNC and domain.validator is not None:
                    reason = domain.validator(states[-1].state, event)
                    if reason is not None:
                        raise InvalidInput(reason)
                states.append(replay(domain.reducer, [event], start=states[-1]))
            except (EventfleetError, ReplayFailed) as e:
                find("invalid_history", f"version {event.version} ({event.type}): {e}")
                return None
            current = event.type
        return states

    async def _check_snapshot(
        self,
        ref: AggregateRef,
        history: list[Event],
        states: list[Folded],
        report: AuditReport,
        find: Callable[[str, str], None],
    ) -> None:
        if self._sources.snapshots is None:
            return
        snapshot = await self._sources.snapshots.load(ref)
        if snapshot is None:
            return
        report.count("snapshots")
        if snapshot.version > len(history):
            find("snapshot_ahead", f"snapshot at version {snapshot.version} > {len(history)}")
        elif snapshot.state != states[snapshot.version].state:
            find("snapshot_mismatch", f"snapshot at version {snapshot.version} != replay")

    async def _check_views(
        self,
        domain: Domain,
        ref: AggregateRef,
        history: list[Event],
        report: AuditReport,
        find: Callable[[str, str], None],
        unseen: list[_Unseen],
    ) -> None:
        """Every view of the aggregate equals the replay at its version; a view the projection
        should hold and does not (missing, or emptied behind its back) is looked at again
        after the in-flight bound, then reported."""
        for projection in domain.projections:
            store = self._sources.views.get(projection.name)
            if store is None or not projection.wants(history[0]):
                continue
            report.count("views")
            doc = await store.load(ref)
            if doc is None:
                unseen.append(_Unseen(ref, projection, store, history))
                continue
            _compare_view(projection, doc, history, find)

    async def _check_marks_and_views(
        self,
        histories: Mapping[AggregateRef, list[Event]],
        unseen: list[_Unseen],
        report: AuditReport,
    ) -> None:
        """Marks that do not name the stored head and views not there yet may be in flight:
        both get one bound together, then whatever still disagrees is a finding."""
        marks = self._sources.marks
        async_refs = [r for r in histories if self._domains.get(r[0]).mode is Mode.ASYNC]
        disagree: dict[AggregateRef, str] = {}
        if marks is not None:
            disagree = await self._disagreeing_marks(marks, async_refs, histories)
            report.count("marks", len(async_refs))
        if disagree or unseen:
            await asyncio.sleep(self._mark_bound_s)
        if marks is not None and disagree:
            disagree = await self._disagreeing_marks(marks, list(disagree), histories)
        for ref, detail in disagree.items():
            report.findings.append(Finding("stale_mark", ref[0], ref[1], detail))
        for missing in unseen:
            ref, projection = missing.ref, missing.projection
            doc = await missing.store.load(ref)

            def find(kind: str, detail: str, ref: AggregateRef = ref) -> None:
                report.findings.append(Finding(kind, ref[0], ref[1], detail))

            if doc is None:
                find(
                    "view_missing",
                    f"{projection.name} holds no view; the store holds {len(missing.history)} "
                    "events it folds",
                )
            else:
                _compare_view(projection, doc, missing.history, find)

    async def _disagreeing_marks(
        self,
        marks: MarkPeek,
        refs: Sequence[AggregateRef],
        histories: Mapping[AggregateRef, list[Event]],
    ) -> dict[AggregateRef, str]:
        found: dict[AggregateRef, str] = {}
        for ref in refs:
            mark = await marks.peek(f"{ref[0]}:{ref[1]}")
            head = histories[ref][-1] if histories[ref] else None
            if mark is not None and head is not None and mark[1] != head.id:
                found[ref] = f"the mark names {mark[0]} {mark[1]}, the store's head is {head.id}"
        return found

    async def _check_topics(
        self,
        names: list[str],
        histories: Mapping[AggregateRef, list[Event]],
        report: AuditReport,
        *,
        whole: bool,
    ) -> None:
        read = self._sources.read_topic
        if read is None:
            return
        routes: dict[str, list[tuple[str, Route | None]]] = {
            "events.stored": [(n, None) for n in names]
        }
        for name in names:
            for route in self._domains.get(name).routes:
                routes.setdefault(route.topic, []).append((name, route))
        for base, wanted in sorted(routes.items()):
            topic = self._sources.topic_name(base)
            records = await read(topic)
            report.count("topics")
            types = {name for name, _ in wanted}
            by_route = {name: route for name, route in wanted}
            seen: dict[AggregateRef, list[Event]] = {}
            for event in records:
                ref = (event.aggregate_type, event.aggregate_id)
                if ref[0] in types and (whole or ref in histories):
                    seen.setdefault(ref, []).append(event)
            for ref, history in histories.items():
                if ref[0] not in by_route:
                    continue
                wanted_route = by_route[ref[0]]
                got = seen.get(ref, [])
                head = history[-1].version if history else 0
                if any((e.version or 0) > (head or 0) for e in got):
                    # Stored after the store was read (the fleet is running): read it again.
                    history = await self._sources.events.select(ref)
                expected = _routed(self._domains.get(ref[0]), history, wanted_route)
                _compare_topic(topic, ref, expected, got, report)
            for ref in set(seen) - set(histories):
                report.findings.append(
                    Finding(
                        "extra_downstream", ref[0], ref[1], f"{topic} carries an unstored aggregate"
                    )
                )


@dataclass(frozen=True, slots=True)
class _Unseen:
    """A view the projection should hold that was not there when first read."""

    ref: AggregateRef
    projection: Projection
    store: ViewStore
    history: list[Event]


def _compare_view(
    projection: Projection, doc: ViewDoc, history: list[Event], find: Callable[[str, str], None]
) -> None:
    """The view at its version equals the replay folded to that version."""
    if doc.version > len(history):
        find("view_ahead", f"{projection.name} at version {doc.version} > {len(history)}")
        return
    expected = advance(projection, None, history[: doc.version]).doc
    if expected is None or expected.view != doc.view:
        find("view_mismatch", f"{projection.name} at version {doc.version} != replay")


def _routed(domain: Domain, history: list[Event], route: Route | None) -> list[Event]:
    """What a topic should carry of one history: events.stored (``route`` None) the stored
    events; a route each event it matches and each derived event it matches, in that order."""
    if route is None:
        return history
    return [
        e for stored in history for e in [stored, *domain.derived(stored)] if route.matches(e.type)
    ]


def _compare_topic(
    topic: str, ref: AggregateRef, expected: list[Event], got: list[Event], report: AuditReport
) -> None:
    """First copies in version order, each stored event once; later copies are doubles."""
    first: list[Event] = []
    ids: set[str] = set()
    doubles = 0
    for event in got:
        if event.id in ids:
            doubles += 1
        else:
            ids.add(event.id)
            first.append(event)
    if [(e.id, e.version) for e in first] != [(e.id, e.version) for e in expected]:
        got_v = [e.version for e in first]
        want_v = [e.version for e in expected]
        kind = "missing_downstream" if set(want_v) - set(got_v) else "out_of_order"
        if set(got_v) - set(want_v):
            kind = "extra_downstream"
        detail = f"{topic} carries versions {_short(got_v)}, the store {_short(want_v)}"
        report.findings.append(Finding(kind, ref[0], ref[1], detail))
    if doubles:
        detail = f"{topic} carries {doubles} extra cop{'y' if doubles == 1 else 'ies'}"
        report.findings.append(Finding("double", ref[0], ref[1], detail))


def _short(values: Sequence[object]) -> str:
    shown = ", ".join(str(v) for v in values[:12])
    return f"[{shown}{', ...' if len(values) > 12 else ''}]"
