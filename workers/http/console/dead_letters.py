"""The console's dead-letter pages: list, inspect, review a fix, confirm it, and the audit trail."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from topics.envelope import decode
from topics.errors import InvalidEnvelope, InvalidInput
from topics.jsonvalue import Json, JsonObject
from workers.http.bodies import posted
from workers.http.console.acting import operator_field
from workers.http.console.desk import SKIP, DeadLetterDesk
from workers.http.console.html import esc, hidden, json_block, link, path, table
from workers.http.console.session import csrf_field
from workers.http.console.views import READ_ONLY, Console
from workers.http.edge.request import Request
from workers.http.edge.responses import Response
from workers.ports import ParkedEntry
from workers.roles.command.requests import CommandRequest
from workers.roles.ops.dlq_replay import DeadLetterEntry, draft, parse_submission


class DeadLetterPages:
    """Reading the dead-letter topic is always allowed; confirm and replay are actions."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.desk = DeadLetterDesk(console.rt, via="console")

    async def entry(self, request: Request) -> DeadLetterEntry:
        """The dead letter the path names (``{partition}/{offset}``)."""
        return await self.desk.entry(f"{request.params['partition']}/{request.params['offset']}")

    # --- dead letters -------------------------------------------------------------------------

    async def dead_letters(self, request: Request) -> Response:
        reason = request.query.get("reason") or None
        state = request.query.get("state") or None
        if state not in (None, *STATES):
            raise InvalidInput(f"state={state!r} must be one of {', '.join(STATES)}.")
        states = await self._states()
        every = await self.desk.entries()  # one read of the topic serves both sections
        entries = [
            e
            for e in _newest_first(every)
            if (reason is None or e.reason == reason)
            and (state is None or states.get(e.position, NEW).state == state)
        ]
        rows = [
            (
                esc(_when(e.at)),
                link(path("dlq", str(e.partition), str(e.offset)), e.position),
                states.get(e.position, NEW).html(),
                esc(e.reason),
                esc(e.detail[:200]),
                esc(e.source),
                esc(e.role),
                _aggregate_link(e),
                esc(e.event.type if e.event else "—"),
                esc(f"{e.parked[0]} #{e.parked[1]}") if e.parked else "—",
            )
            for e in entries
        ]
        headings = (
            "dead-lettered at",
            "entry",
            "state",
            "reason",
            "detail",
            "source",
            "role",
            "aggregate",
            "event type",
            "parked",
        )
        listed = table(headings, rows, css_id="dead-letters")
        if self.console.actions:  # tick entries, then review one action on all of them
            ticks = [
                f'<input type="checkbox" name="entry" value="{esc(e.position)}">' for e in entries
            ]
            ticked = [(t, *r) for t, r in zip(ticks, rows, strict=True)]
            listed = (
                '<form method="post" action="/console/dlq/bulk/review" id="bulk">'
                + csrf_field(request)
                + table(("", *headings), ticked, css_id="dead-letters")
                + operator_field(self.console, request, "bulk-operator")
                + '<p><label>with the ticked entries: <select name="action">'
                '<option value="replay">replay as they were</option>'
                '<option value="skip">skip</option></select></label> '
                '<button type="submit" id="bulk-review">Review</button></p></form>'
            )
        body = (
            await self._parked_section(every)
            + f"<h2>Dead letters</h2><p>topic <code>{esc(self.desk.topic)}</code>, newest first</p>"
            + _filters(reason, state)
            + listed
        )
        return self.console.html("Dead letters", body)

    async def _parked_section(self, entries: list[DeadLetterEntry]) -> str:
        """Parked aggregates, each with its queue: the head (what could not be stored) first."""
        where = {e.source: e.position for e in entries if e.parked is not None}
        rows = []
        for head, last, queue in await self.desk.parked():
            shown = "".join(
                f"<li>#{q.seq} "
                + (
                    link(path("dlq", *where[q.source].split("/")), where[q.source])
                    if q.source in where
                    else esc(q.source)
                )
                + f" {esc(_type_of(q))} <em>{esc(q.reason)}</em></li>"
                for q in queue
            )
            more = (
                f"<li>… {last - queue[-1].seq} more</li>" if queue and last > queue[-1].seq else ""
            )
            rows.append(
                (
                    esc(head.key),
                    esc(head.reason),
                    esc(head.detail[:200]),
                    esc(
                        f"{head.resolution} ({head.by})"
                        if head.resolution
                        else "waits for an operator"
                    ),
                    str(len(queue) if not more else f"{len(queue)}+"),
                    f'<ol class="queue">{shown}{more}</ol>',
                )
            )
        if not rows:
            return '<h2>Parked aggregates</h2><p id="parked-none">none</p>'
        headings = ("aggregate", "head's reason", "detail", "head", "waiting", "queue, in order")
        return (
            "<h2>Parked aggregates</h2><p>Each waits alone, in order, behind its head: replay "
            "the head fixed, or skip it, and the appender judges the rest again.</p>"
            + table(headings, rows, css_id="parked")
        )

    async def _states(self) -> dict[str, EntryState]:
        """Each replayed entry's state from the audit trail (the first successful replay)."""
        found: dict[str, EntryState] = {}
        for action in reversed(await self.desk.actions(limit=1000)):  # oldest first
            replayed = found.get(action.target, NEW).state == "replayed"
            if action.action == "dlq_replay" and action.status < 300 and not replayed:
                found[action.target] = EntryState(
                    "replayed", action.operator, action.at, dict(action.submitted)
                )
            elif action.action == SKIP and not replayed:
                found[action.target] = EntryState("skipped", action.operator, action.at)
        return found

    async def dead_letter(self, request: Request) -> Response:
        entry = await self.entry(request)
        already = entry.source_topic == self.console.rt.names.stored
        info = table(
            ("field", "value"),
            [(esc(k), _shown(k, v)) for k, v in entry.as_dict().items()],
            css_id="entry",
        )
        state = (await self._states()).get(entry.position, NEW)
        info = f'<p id="state">{state.html()}</p>' + info
        if entry.event is not None:
            info += "<p>" + _aggregate_link(entry) + "</p>"
        if already:
            form = (
                '<p class="note">This event was already stored; fix the reducer or projection '
                "and rebuild instead.</p>"
            )
        elif not self.console.actions:
            form = f'<p class="note" id="read-only">{esc(READ_ONLY)}</p>'
        else:
            # A replayed entry shows what was replayed: sending it again changes nothing, and
            # other data is refused (already_replayed) with nothing applied.
            start = state.submitted if state.submitted is not None else draft(entry)
            draft_json = orjson.dumps(start, option=orjson.OPT_INDENT_2).decode()
            target = path("dlq", str(entry.partition), str(entry.offset), "confirm")
            form = (
                (
                    f'<p class="note" id="replayed">Replayed by {esc(state.who)} at '
                    f"{esc(_when(state.at))}; below is what was submitted.</p>"
                    if state.state != "new"
                    else ""
                )
                + f'<h2>Fix and re-submit</h2><form method="post" action="{esc(target)}">'
                + csrf_field(request)
                + "<p><label>Submission (edit the fix):<br>"
                f'<textarea name="submission" id="submission">{esc(draft_json)}</textarea>'
                "</label></p>"
                + operator_field(self.console, request)
                + '<p><button type="submit" id="review">Review</button></p></form>'
            )
            if state.state == "new":
                target = path("dlq", str(entry.partition), str(entry.offset), "skip")
                form += (
                    f'<form method="post" action="{esc(target)}">{csrf_field(request)}'
                    + operator_field(self.console, request, "skip-operator")
                    + '<button type="submit" id="skip">Skip (needs nothing)</button></form>'
                )
        return self.console.html(f"Dead letter {entry.position}", info + form)

    async def confirm(self, request: Request) -> Response:
        entry = await self.entry(request)
        form = posted(request)  # read whole, CSRF checked: Console.guarded
        submission = parse_submission(str(form.get("submission", "")), max_bytes=self._limit())
        operator = self.console.operator(request, str(form.get("operator", "")))
        command = self.desk.replayer().command(entry, submission)
        request_body = {
            "type": command.type,
            "data": command.data,
            "command_id": command.command_id,
            "client_id": command.client_id,
            "causation_id": command.causation_id,
        }
        target = path("dlq", str(entry.partition), str(entry.offset), "replay")
        body = (
            "<p>Exactly this will be re-submitted through the command path, "
            f"as <strong>{esc(operator)}</strong>:</p>"
            f'<p><code id="route">POST {esc(_events_path(command))}</code></p>'
            f'<div id="preview">{json_block(request_body)}</div>'
            f'<form method="post" action="{esc(target)}">'
            + csrf_field(request)
            + hidden("submission", orjson.dumps(submission).decode())
            + hidden("operator", operator)
            + hidden("confirm", "yes")
            + '<button type="submit" id="confirm">Confirm re-submit</button> '
            + link(path("dlq", str(entry.partition), str(entry.offset)), "cancel")
            + "</form>"
        )
        return self.console.html(f"Confirm replay of {entry.position}", body)

    async def replay(self, request: Request) -> Response:
        entry = await self.entry(request)
        form = posted(request)  # read whole, CSRF checked: Console.guarded
        if form.get("confirm") != "yes":
            raise InvalidInput("a replay needs the confirm step: review it first, then confirm.")
        submission = parse_submission(str(form.get("submission", "")), max_bytes=self._limit())
        operator = self.console.operator(request, str(form.get("operator", "")))
        actor = self.console.fleet.door.actor(request)  # the event records who replayed it
        action = await self.desk.replay(entry, submission, operator=operator, actor=actor)
        ok = action.status < 300
        body = (
            f'<p id="outcome" class="{"good" if ok else "bad"}">status {action.status}: '
            f"{'accepted' if ok else 'refused'}</p>{json_block(action.result)}"
            f"<p>Recorded in the {link('/console/audit', 'audit trail')} as {esc(action.id)}.</p>"
        )
        return self.console.html(f"Replayed {entry.position}", body, 200)

    def _limit(self) -> int:
        return self.console.rt.settings.max_body_bytes

    # --- audit trail and charts ---------------------------------------------------------------

    async def audit(self, request: Request) -> Response:
        actions = await self.desk.actions(limit=200)
        rows = [
            (
                esc(a.at.isoformat()),
                esc(a.operator),
                esc(a.via),
                esc(a.action),
                esc(a.target),
                json_block(a.submitted),
                esc(a.status),
                json_block(a.result),
            )
            for a in actions
        ]
        headings = ("when", "who", "via", "action", "target", "what", "status", "result")
        return self.console.html("Audit trail", table(headings, rows, css_id="audit"))


STATES = ("new", "replayed", "skipped")


@dataclass(frozen=True, slots=True)
class EntryState:
    """Where a dead letter stands: new, or replayed (by whom, when)."""

    state: str
    who: str = ""
    at: datetime | None = None
    submitted: JsonObject | None = None

    def html(self) -> str:
        if self.state == "new":
            return '<span class="bad">new</span>'
        done = f"by {esc(self.who)} at {esc(_when(self.at))}"
        if self.state == "skipped":
            return f'<span class="muted">skipped</span> {done}'
        return f'<span class="good">{esc(self.state)}</span> {done}'


NEW = EntryState("new")


def _newest_first(entries: list[DeadLetterEntry]) -> list[DeadLetterEntry]:
    oldest = datetime.min.replace(tzinfo=UTC)
    return sorted(entries, key=lambda e: (e.at or oldest, e.partition, e.offset), reverse=True)


def _type_of(entry: ParkedEntry) -> str:
    try:
        return decode(entry.record.value).type
    except InvalidEnvelope:
        return "(no envelope)"


def _when(at: datetime | None) -> str:
    return at.isoformat(timespec="seconds") if at is not None else "—"


def _aggregate_link(entry: DeadLetterEntry) -> str:
    event = entry.event
    if event is None:
        return "—"
    return link(
        path("aggregates", event.aggregate_type, event.aggregate_id),
        f"{event.aggregate_type} {event.aggregate_id}",
    )


def _shown(name: str, value: Json) -> str:
    """A field of the entry: ``—`` for nothing, the value's JSON pretty-printed."""
    if value is None or value == "":
        return "—"
    if name == "value":
        try:
            return json_block(orjson.loads(value))
        except orjson.JSONDecodeError:
            return f"<pre>{esc(value)}</pre>"
    return esc(value)


def _filters(reason: str | None, state: str | None) -> str:
    options = "".join(
        f'<option value="{s}"{" selected" if state == s else ""}>{s or "any"}</option>'
        for s in ("", *STATES)
    )
    return (
        '<form method="get" id="filters"><label>state <select name="state">'
        f"{options}</select></label> <label>reason "
        f'<input name="reason" value="{esc(reason or "")}" size="28"></label> '
        '<button type="submit">filter</button></form>'
    )


def _events_path(command: CommandRequest) -> str:
    return f"/v1/{command.aggregate_type}/{command.aggregate_id}/events"
