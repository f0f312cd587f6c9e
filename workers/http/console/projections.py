"""The console's projections page: each projection's status, views, lag per partition, and a
rebuild an operator starts (a POST with the console's CSRF check, run in the background)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from topics.errors import EventfleetError
from workers.http.console.html import esc, link, path, table
from workers.http.console.session import csrf_field
from workers.http.console.views import Console
from workers.http.edge.request import Request
from workers.http.edge.responses import Response
from workers.runtime.rebuild import projection_named, rebuild


@dataclass(slots=True)
class Rebuild:
    """One rebuild started from the console: who, when, how far, and how it ended."""

    who: str
    started: float
    done: int = 0
    total: int = 0
    finished: float | None = None
    views: int | None = None
    error: str = ""

    @property
    def running(self) -> bool:
        return self.finished is None and not self.error

    def html(self) -> str:
        when = datetime.fromtimestamp(self.started, UTC).isoformat(timespec="seconds")
        head = f"by {esc(self.who)} at {esc(when)}"
        if self.error:
            return f'<span class="bad">rebuild failed</span> ({head}): {esc(self.error)}'
        if self.finished is None:
            return f"rebuilding ({head}): {self.done}/{self.total} events"
        return f'<span class="good">rebuilt</span> {self.views} views ({head})'


class ProjectionPages:
    """The projections page and its rebuild action."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.rebuilds: dict[str, Rebuild] = {}

    async def projections(self, request: Request) -> Response:
        fleet, rt = self.console.fleet, self.console.rt
        lag = _lag_by_projection(self.console)
        runs_here = "projection" in fleet.roles
        rows = []
        for name, projection in sorted(rt.domains.projections().items()):
            versions = await rt.views(projection.collection).versions()
            partitions = lag.get(name, {})
            state = self.rebuilds.get(name)
            status = (
                state.html()
                if state is not None
                else ('<span class="good">running here</span>' if runs_here else "not run here")
            )
            rows.append(
                (
                    esc(name),
                    esc(", ".join(sorted(projection.aggregate_types))),
                    esc(projection.collection),
                    status,
                    esc(len(versions)),
                    esc(max(versions.values(), default=0)),
                    esc(sum(partitions.values())) if partitions else "—",
                    esc(", ".join(f"{p}: {n}" for p, n in sorted(partitions.items()))) or "—",
                    self._rebuild_form(request, name),
                )
            )
        headings = (
            "projection",
            "aggregate types",
            "collection",
            "status",
            "views",
            "newest version folded",
            "lag (events)",
            "lag per partition",
            "rebuild",
        )
        running = any(state.running for state in self.rebuilds.values())
        return self.console.html(  # followed while a rebuild runs
            "Projections",
            table(headings, rows, css_id="projections"),
            refresh_s=2 if running else None,
        )

    def _rebuild_form(self, request: Request, name: str) -> str:
        if not self.console.actions:
            return '<span class="muted">read-only</span>'
        running = self.rebuilds.get(name)
        if running is not None and running.running:
            return '<span class="muted">running</span>'
        target = path("projections", name, "rebuild")
        return (
            f'<form method="post" action="{esc(target)}">{csrf_field(request)}'
            f'<button type="submit" id="rebuild-{esc(name)}">rebuild</button></form>'
        )

    async def rebuild(self, request: Request) -> Response:
        name = request.params["name"]
        projection_named(self.console.rt.domains, name)  # unknown: 400 naming the known ones
        running = self.rebuilds.get(name)
        if running is not None and running.running:
            body = f'<p id="outcome">{running.html()}; it was not started again.</p>'
            return self.console.html(f"Rebuild {name}", body, 409)
        who = self.console.operator(request, "")
        state = self.rebuilds[name] = Rebuild(who=who, started=time.time())
        self.console.fleet.spawn(self._run(name, state))
        back = link("/console/projections", "the projections page")
        body = (
            f'<p id="outcome" class="good">rebuild of {esc(name)} started; {back} follows it.</p>'
        )
        return self.console.html(f"Rebuild {name}", body, 202)

    async def _run(self, name: str, state: Rebuild) -> None:
        def progress(done: int, total: int) -> None:
            state.done, state.total = done, total

        try:
            state.views = await rebuild(self.console.rt, name, progress=progress)
        except EventfleetError as e:
            state.error = str(e)
        finally:
            state.finished = time.time()


def _lag_by_projection(console: Console) -> dict[str, dict[str, int]]:
    """This process's projection lag gauge, by projection and partition."""
    found: dict[str, dict[str, int]] = {}
    for metric in console.rt.metrics.projection_lag.collect():
        for sample in metric.samples:
            labels = sample.labels
            found.setdefault(labels["projection"], {})[labels["partition"]] = int(sample.value)
    return found
