"""The operator console at ``/console``: server-rendered pages over the fleet's own stores.

Read-only unless ``EVENTFLEET_CONSOLE_ACTIONS=true``: browse aggregate types and aggregates,
an aggregate's timeline, its snapshot against replay, time travel, the dead-letter topic,
lag and throughput; with actions on, re-submit a fixed dead letter (review, confirm, audit).
"""

from __future__ import annotations

from aiohttp import web

from workers.http.console.api import ApiPage
from workers.http.console.browse import BrowsePages
from workers.http.console.dead_letters import DeadLetterPages
from workers.http.console.dlq_bulk import BulkPages
from workers.http.console.html import SECURITY_HEADERS, STYLE, STYLESHEET
from workers.http.console.operator import OperatorPages
from workers.http.console.projections import ProjectionPages
from workers.http.console.samples import Sampler, counter_total, gauge_total
from workers.http.console.session import Login
from workers.http.console.views import Console
from workers.http.contract import Contract
from workers.runtime.fleet import Fleet

__all__ = ["register_console"]


def register_console(fleet: Fleet) -> Console:
    """Add the console's routes to the fleet's web server; its sampler runs with the server."""
    rt = fleet.runtime
    metrics = rt.metrics

    def lag() -> float:
        if fleet.lag is not None:  # the lag role measures every group from the brokers
            return gauge_total(metrics.group_lag)
        fleet.refresh_gauges()
        return gauge_total(metrics.consumer_lag)

    counted = metrics.events_appended if "appender" in fleet.roles else metrics.requests
    unit = "events stored" if "appender" in fleet.roles else "command requests"
    sampler = Sampler(
        lag=lag,
        count=lambda: counter_total(counted),
        interval_s=rt.settings.console_sample_interval_s,
    )
    console = Console(fleet, sampler, throughput_unit=unit)
    web_app = fleet.web_app

    async def started(app: web.Application) -> None:
        sampler.start()

    async def stopped(app: web.Application) -> None:
        await sampler.stop()

    web_app.on_startup.append(started)
    web_app.on_cleanup.append(stopped)
    get, post, guard = web_app.router.add_get, web_app.router.add_post, console.guarded
    get("/console", guard(console.overview))
    get("/console/types/{aggregate_type}", guard(console.aggregates))
    get("/console/aggregates/{aggregate_type}/{aggregate_id}", guard(console.aggregate))
    letters = DeadLetterPages(console)
    get("/console/dlq", guard(letters.dead_letters))
    get("/console/dlq/{partition}/{offset}", guard(letters.dead_letter))
    post("/console/dlq/{partition}/{offset}/confirm", guard(letters.confirm, action=True))
    post("/console/dlq/{partition}/{offset}/replay", guard(letters.replay, action=True))
    bulk = BulkPages(letters)  # workers/http/console/dlq_bulk.py
    post("/console/dlq/{partition}/{offset}/skip", guard(bulk.skip, action=True))
    post("/console/dlq/bulk/review", guard(bulk.review, action=True))
    post("/console/dlq/bulk/confirm", guard(bulk.confirm, action=True))
    get("/console/audit", guard(letters.audit))
    get("/console/lag", guard(console.lag))
    login = Login(fleet.door, fleet.runtime.settings)
    get("/console/login", login.show)
    post("/console/login", login.sign_in)
    post("/console/logout", login.sign_out)
    get(STYLESHEET, stylesheet)
    operator = OperatorPages(console)  # workers/http/console/operator.py
    get("/console/groups", guard(operator.groups))
    get("/console/search", guard(operator.search))
    projections = ProjectionPages(console)  # workers/http/console/projections.py
    get("/console/projections", guard(projections.projections))
    post("/console/projections/{name}/rebuild", guard(projections.rebuild, action=True))
    browse = BrowsePages(console)  # workers/http/console/browse.py
    get("/console/topics", guard(browse.topics))
    get("/console/topics/{topic}", guard(browse.topic))
    get("/console/aggregates/{aggregate_type}/{aggregate_id}/diff", guard(browse.diff))
    api = ApiPage(console, Contract(fleet, web_app))  # workers/http/console/api.py
    get("/console/api", guard(api.page))
    get("/console/api.json", guard(api.json))
    get("/console/{unknown:.*}", guard(operator.not_found))  # last: any other console path
    web_app.on_response_prepare.append(security_headers)
    return console


async def stylesheet(request: web.Request) -> web.Response:
    return web.Response(
        text=STYLE, content_type="text/css", headers={"Cache-Control": "max-age=3600"}
    )


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer: no framing, no sniffing, no referrer, no script (console and API alike)."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
