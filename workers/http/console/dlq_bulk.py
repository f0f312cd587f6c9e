"""Skipping dead letters, and acting on many at once with a review step.

A skip is an audited decision that an entry needs nothing (its state becomes ``skipped``, by
whom, when). Bulk actions take the entries ticked on the list: the review page shows exactly
what each will do (replay the event as it was, or skip); only its confirm acts, each entry
through the same path as a single one (a replay is still once per entry).
"""

from __future__ import annotations

from topics.errors import InvalidInput
from workers.http.bodies import posted
from workers.http.console.acting import who
from workers.http.console.dead_letters import DeadLetterPages
from workers.http.console.html import esc, hidden, json_block, link, table
from workers.http.console.session import csrf_field
from workers.http.edge.request import MultiValues, Request
from workers.http.edge.responses import Response
from workers.ports import OperatorAction
from workers.roles.ops.dlq_replay import DeadLetterEntry, draft, find_entry

BULK_ACTIONS = ("replay", "skip")
BULK_MAX = 200


class BulkPages:
    """Skip one entry; review and confirm an action on many."""

    def __init__(self, letters: DeadLetterPages) -> None:
        self.letters = letters
        self.console = letters.console

    async def skip(self, request: Request) -> Response:
        entry = await self.letters.entry(request)
        form = posted(request)  # read whole, CSRF checked: Console.guarded
        action = await self._skip(entry, who(self.console, request, form))
        skipped = f"{esc(entry.position)} skipped by {esc(action.operator)}"
        body = f'<p id="outcome" class="good">{skipped}</p>'
        if "releases" in action.result:
            body += (
                f'<p id="released">{esc(action.result["releases"])} is released: the appender '
                "judges the rest of its queue again, in order.</p>"
            )
        return self.console.html(f"Skipped {entry.position}", body)

    async def _skip(self, entry: DeadLetterEntry, operator: str) -> OperatorAction:
        """Audited; the head of a parked queue is released (the desk refuses one behind it)."""
        return await self.letters.desk.skip(entry, operator=operator)

    async def review(self, request: Request) -> Response:
        form = posted(request)  # read whole, CSRF checked: Console.guarded
        operator = who(self.console, request, form)  # typed only when the door is open
        what, entries = await self._chosen(form)
        rows = [
            (
                esc(e.position),
                esc(e.reason),
                esc(what),
                json_block(draft(e)) if what == "replay" else "—",
            )
            for e in entries
        ]
        confirm = (
            '<form method="post" action="/console/dlq/bulk/confirm">'
            + csrf_field(request)
            + hidden("action", what)
            + hidden("operator", operator)
            + "".join(hidden("entry", e.position) for e in entries)
            + f'<button type="submit" id="confirm">Confirm: {esc(what)} {len(entries)} '
            "entries</button> " + link("/console/dlq", "cancel") + "</form>"
        )
        body = (
            f"<p>Exactly this will happen, as <strong>{esc(operator)}</strong>:</p>"
            + table(("entry", "reason", "action", "submitted"), rows, css_id="review")
            + confirm
        )
        return self.console.html("Review the bulk action", body)

    async def confirm(self, request: Request) -> Response:
        form = posted(request)  # read whole, CSRF checked: Console.guarded
        operator = who(self.console, request, form)  # refused before any entry acts
        what, entries = await self._chosen(form)
        rows = []
        for entry in entries:
            if what == "skip":
                await self._skip(entry, operator)
                rows.append((esc(entry.position), '<span class="good">skipped</span>'))
                continue
            actor = self.console.fleet.door.actor(request)
            done = await self.letters.desk.replay(
                entry, draft(entry), operator=operator, actor=actor
            )
            css = "good" if done.status < 300 else "bad"
            rows.append((esc(entry.position), f'<span class="{css}">status {done.status}</span>'))
        body = table(("entry", "outcome"), rows, css_id="bulk-outcome") + (
            f"<p>Recorded in the {link('/console/audit', 'audit trail')}.</p>"
        )
        return self.console.html(f"Bulk {what}", body)

    async def _chosen(self, form: MultiValues) -> tuple[str, list[DeadLetterEntry]]:
        what = str(form.get("action", ""))
        if what not in BULK_ACTIONS:
            raise InvalidInput(f"action must be one of {', '.join(BULK_ACTIONS)}.")
        positions = list(dict.fromkeys(str(p) for p in form.getall("entry", [])))
        if not positions:
            raise InvalidInput("tick at least one dead letter on the list.")
        if len(positions) > BULK_MAX:
            raise InvalidInput(f"at most {BULK_MAX} entries at once.")
        every = await self.letters.desk.entries()
        entries = [find_entry(every, position) for position in positions]
        for entry in entries:  # a parked queue acts at its head only: refused before any acts
            await self.letters.desk.check_parked(entry)
        if what == "replay":
            for entry in entries:
                if entry.event is None:
                    raise InvalidInput(
                        f"dead letter {entry.position} holds no event: fix and replay it alone."
                    )
        return what, entries
