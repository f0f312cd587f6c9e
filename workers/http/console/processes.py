"""The console's process managers: each manager's instances by status and its pending deadlines,
one instance whole (state, deadlines, unsent commands, held events, why it is stuck), and the
retry of a stuck one (an operator's POST, with the console's role and CSRF checks, audited)."""

from __future__ import annotations

from datetime import UTC, datetime

from workers.http.bodies import posted
from workers.http.console.acting import operator_field
from workers.http.console.html import esc, json_block, link, path, table
from workers.http.console.session import csrf_field
from workers.http.console.views import Console
from workers.http.edge.request import Request
from workers.http.edge.responses import Response
from workers.http.processes import process_of
from workers.ports import STATUSES, STUCK, Instance
from workers.roles.process.desk import NotStuck, ProcessDesk, check_key, instance_dict

PAGE = 100
DEADLINES_SHOWN = 20


class ProcessPages:
    """The process managers' pages and the retry action."""

    def __init__(self, console: Console) -> None:
        self.console = console

    @property
    def desk(self) -> ProcessDesk:
        return self.console.rt.process_desk

    async def processes(self, request: Request) -> Response:
        if not self.console.rt.processes:
            body = '<p id="none">No process manager is enabled here (EVENTFLEET_PROCESSES).</p>'
            return self.console.html("Process managers", body)
        rows = []
        for summary in await self.desk.overview():
            m = summary.manager
            counts = ", ".join(f"{n} {status}" for status, n in summary.counts.items() if n)
            stuck = summary.counts.get(STUCK, 0)
            rows.append(
                (
                    link(path("processes", m.name), m.name),
                    esc(m.principal),
                    esc(", ".join(sorted(f"{t}.{e}" for t, e in m.triggers("start")))),
                    esc(counts or "none yet"),
                    link(path("processes", m.name) + f"?status={STUCK}", f"{stuck} stuck")
                    if stuck
                    else "0 stuck",
                )
            )
        headings = ("process manager", "principal", "starts on", "instances", "stuck")
        return self.console.html("Process managers", table(headings, rows, css_id="processes"))

    async def instances(self, request: Request) -> Response:
        name = process_of(request)
        status = request.query.get("status") or None
        after = request.query.get("after") or None
        page, following = await self.desk.page(name, status=status, after=after, limit=PAGE)
        rows = [
            (
                link(path("processes", name, i.key), i.key),
                _status(i),
                esc(_when(i.next_due)),
                esc(len(i.outbox)),
                esc(_when(i.updated_at)),
                esc(f"{i.stuck.reason}: {i.stuck.detail[:120]}") if i.stuck is not None else "",
            )
            for i in page
        ]
        filters = " · ".join(link(path("processes", name) + f"?status={s}", s) for s in STATUSES)
        more = (
            f"<p>{link(path('processes', name) + f'?after={following}', 'next page')}</p>"
            if following is not None
            else ""
        )
        headings = ("key", "status", "next deadline", "unsent", "updated", "stuck because")
        deadlines = await self.desk.deadlines(name, limit=DEADLINES_SHOWN)
        pending = table(
            ("due", "deadline", "instance"),
            [
                (esc(_when(d.due_at)), esc(d.name), link(path("processes", name, key), key))
                for key, d in deadlines
            ],
            css_id="deadlines",
        )
        body = (
            f"<p>Show: {filters} · {link(path('processes', name), 'all')}</p>"
            + table(headings, rows, css_id="instances")
            + more
            + f"<h2>Pending deadlines, the soonest {DEADLINES_SHOWN}</h2>"
            + pending
        )
        return self.console.html(f"Process {name}", body)

    async def instance(self, request: Request) -> Response:
        name, key = process_of(request), _key(request)
        found = await self.desk.show(name, key)
        shown = instance_dict(found)
        trouble = ""
        if found.stuck is not None:
            trouble = (
                f'<p id="stuck" class="bad">stuck: {esc(found.stuck.reason)} (attempt '
                f"{found.stuck.attempts}): {esc(found.stuck.detail)}</p>"
                + self._retry_form(request, found)
            )
        body = (
            f'<p id="status">{_status(found)} · revision {found.revision} · '
            f"{link(path('processes', name), 'all instances')}</p>{trouble}"
            + "<h2>State</h2>"
            + json_block(shown["state"])
            + "<h2>Pending deadlines</h2>"
            + json_block(shown["deadlines"])
            + "<h2>Fired deadlines</h2>"
            + json_block(shown["fired"])
            + "<h2>Commands not yet answered</h2>"
            + json_block(shown["outbox"])
            + "<h2>Events held for the retry</h2>"
            + json_block(shown["held"])
        )
        return self.console.html(f"{name} {key}", body)

    def _retry_form(self, request: Request, instance: Instance) -> str:
        if not self.console.actions or instance.status != STUCK:
            return '<p class="muted">read-only</p>' if not self.console.actions else ""
        target = path("processes", instance.process, instance.key, "retry")
        who = operator_field(self.console, request)
        return (
            f'<form method="post" action="{esc(target)}">{csrf_field(request)}{who}'
            '<button type="submit" id="retry">Retry</button></form>'
        )

    async def retry(self, request: Request) -> Response:
        name, key = process_of(request), _key(request)
        operator = self.console.operator(request, str(posted(request).get("operator", "")))
        try:
            asked = await self.desk.retry(name, key, operator=operator, via="console")
        except NotStuck as e:
            body = f'<p id="error" class="bad">{esc(e)}</p>'
            return self.console.html(f"Retry {name} {key}", body, 409)
        back = link(path("processes", name, key), "the instance")
        body = (
            f'<p id="outcome" class="good">retry of {esc(name)} {esc(key)} asked (revision '
            f"{asked.revision}); the pm role runs it at its next poll: {back} shows how it "
            "went.</p>"
        )
        return self.console.html(f"Retry {name} {key}", body, 202)


def _key(request: Request) -> str:
    return check_key(request.params["key"], "key")


def _status(instance: Instance) -> str:
    css = {"stuck": "bad", "done": "muted", "active": "good"}.get(instance.status, "")
    return f'<span class="{css}">{esc(instance.status)}</span>'


def _when(moment: datetime | None) -> str:
    return "—" if moment is None else moment.astimezone(UTC).isoformat(timespec="seconds")
