"""The operator console at ``/console``: server-rendered pages over the fleet's own stores.

Read-only unless ``EVENTFLEET_CONSOLE_ACTIONS=true``: browse aggregate types and aggregates,
the log of every stored event from a position (the global read), an aggregate's timeline,
its snapshot against replay, time travel, the dead-letter topic, lag and throughput, the
process managers' instances; with actions on, re-submit a fixed dead letter (review, confirm,
audit) or retry a stuck process manager instance, post an event from a form made from the
domain's schema, produce a raw record, or reset an idle consumer group's offsets (each reviewed,
confirmed and audited).
Its routes are declared on the fleet's ``Api`` like any other, hidden from the contract; the
edge adds the security headers (``workers.http.edge.responses.SECURITY_HEADERS``) to every
answer, and the door sends a browser without a session to the login page.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from workers.http.console.api import ApiPage
from workers.http.console.browse import BrowsePages
from workers.http.console.dead_letters import DeadLetterPages
from workers.http.console.dlq_bulk import BulkPages
from workers.http.console.group_reset import GroupResetPages
from workers.http.console.html import STYLE, STYLESHEET
from workers.http.console.log import GlobalLogPage
from workers.http.console.operator import OperatorPages
from workers.http.console.post_event import PostEventPages
from workers.http.console.processes import ProcessPages
from workers.http.console.produce import ProducePages
from workers.http.console.projections import ProjectionPages
from workers.http.console.samples import Sampler, counter_total, gauge_total
from workers.http.console.session import Login
from workers.http.console.tail import TopicTail
from workers.http.console.topics import TopicPages
from workers.http.console.views import Console, Handler
from workers.http.contract import Contract
from workers.http.edge.request import Request
from workers.http.edge.responses import Response
from workers.http.edge.routes import Api, Doc, Route
from workers.roles.read.global_read import GlobalRead
from workers.runtime.fleet import Fleet

__all__ = ["register_console"]

CSS = "text/css; charset=utf-8"


class Server(Protocol):
    """What the console needs of the process's server (``workers.http.FleetHttp``): its routes,
    and the hooks run once it started and after it stopped."""

    api: Api
    """The routes of the API's port."""
    operator: Api
    """The routes of the operator's port (the API's own, unless it has one)."""
    on_start: list[Callable[[], Awaitable[None]]]
    on_cleanup: list[Callable[[], Awaitable[None]]]


def register_console(fleet: Fleet, http: Server, reader: GlobalRead) -> Console:
    """Add the console's routes to the fleet's ``Api``; its sampler runs with the server;
    ``reader`` is the process's global read (its log page)."""
    sampler = _sampler(fleet)
    console = Console(fleet, sampler, throughput_unit=_throughput_unit(fleet))

    async def started() -> None:
        sampler.start()

    http.on_start.append(started)
    http.on_cleanup.append(sampler.stop)
    api, guard = http.operator, console.guarded

    def get(template: str, handler: Handler) -> None:
        _page(api, "GET", template, guard(handler))

    def act(template: str, handler: Handler) -> None:
        _page(api, "POST", template, guard(handler, action=True))

    get("/console", console.overview)
    get("/console/types/{aggregate_type}", console.aggregates)
    get("/console/aggregates/{aggregate_type}/{aggregate_id}", console.aggregate)
    letters = DeadLetterPages(console)
    get("/console/dlq", letters.dead_letters)
    get("/console/dlq/{partition}/{offset}", letters.dead_letter)
    act("/console/dlq/{partition}/{offset}/confirm", letters.confirm)
    act("/console/dlq/{partition}/{offset}/replay", letters.replay)
    bulk = BulkPages(letters)  # workers/http/console/dlq_bulk.py
    act("/console/dlq/{partition}/{offset}/skip", bulk.skip)
    act("/console/dlq/bulk/review", bulk.review)
    act("/console/dlq/bulk/confirm", bulk.confirm)
    get("/console/audit", letters.audit)
    get("/console/lag", console.lag)
    login = Login(fleet.door, fleet.runtime.settings)
    # Signing in carries no data: served on the API's port too when the operator has a port of
    # its own, for the pages there that sign in through it (the chat page).
    for serving in dict.fromkeys((api, http.api)):
        _page(serving, "GET", "/console/login", login.show, open_path=True)
        _page(serving, "POST", "/console/login", login.sign_in, open_path=True)
        _page(serving, "POST", "/console/logout", login.sign_out)
        _page(serving, "GET", STYLESHEET, stylesheet, open_path=True)
    operator = OperatorPages(console)  # workers/http/console/operator.py
    get("/console/groups", operator.groups)
    get("/console/search", operator.search)
    get("/console/log", GlobalLogPage(console, reader).log)  # workers/http/console/log.py
    projections = ProjectionPages(console)  # workers/http/console/projections.py
    get("/console/projections", projections.projections)
    act("/console/projections/{name}/rebuild", projections.rebuild)
    pm = ProcessPages(console)  # workers/http/console/processes.py
    get("/console/processes", pm.processes)
    get("/console/processes/{process}", pm.instances)
    get("/console/processes/{process}/{key}", pm.instance)
    act("/console/processes/{process}/{key}/retry", pm.retry)
    browse = BrowsePages(console)  # workers/http/console/browse.py
    topics = TopicPages(console, browse)  # workers/http/console/topics.py
    get("/console/topics", topics.topics)
    get("/console/topics/{topic}", topics.topic)
    get("/console/topics/{topic}/settings", topics.topic_settings)
    get("/console/topics/{topic}/tail", TopicTail(console, browse).topic_tail)  # tail.py
    get("/console/zone", topics.choose_zone)
    get("/console/aggregates/{aggregate_type}/{aggregate_id}/diff", browse.diff)
    posting = PostEventPages(console)  # workers/http/console/post_event.py
    get("/console/post", posting.form)
    act("/console/post/review", posting.review)
    act("/console/post/send", posting.send)
    producing = ProducePages(console)  # workers/http/console/produce.py
    get("/console/produce", producing.form)
    act("/console/produce/review", producing.review)
    act("/console/produce/send", producing.send)
    reset = GroupResetPages(console)  # workers/http/console/group_reset.py
    get("/console/groups/{group}/reset", reset.form)
    act("/console/groups/{group}/reset/review", reset.review)
    act("/console/groups/{group}/reset/apply", reset.apply)
    page = ApiPage(console, Contract(fleet, http.api))  # workers/http/console/api.py
    get("/console/api", page.page)
    get("/console/api.json", page.json)
    get("/console/{unknown:.*}", operator.not_found)  # last: any other console path
    return console


def _page(
    api: Api, method: str, template: str, handler: Handler, *, open_path: bool = False
) -> None:
    """A console route: hidden from the contract. Its path's aggregate names are not checked
    by the dispatcher (whose refusal is the API's JSON) but by the page, so a bad one is a
    console page with its status like every other error here; the door's read rule still
    sees them (``workers.http.routes.read_access``)."""
    name = "console_" + getattr(handler, "__name__", "page")
    api.add(
        Route(
            method, template, handler, name, open=open_path, doc=Doc(hidden=True), check_path=False
        )
    )


def _sampler(fleet: Fleet) -> Sampler:
    """Lag and throughput of this process, every EVENTFLEET_CONSOLE_SAMPLE_INTERVAL_S."""
    rt = fleet.runtime
    metrics = rt.metrics

    def lag() -> float:
        if fleet.lag is not None:  # the lag role measures every group from the brokers
            return gauge_total(metrics.group_lag)
        fleet.refresh_gauges()
        return gauge_total(metrics.consumer_lag)

    counted = metrics.events_appended if "appender" in fleet.roles else metrics.requests
    return Sampler(
        lag=lag,
        count=lambda: counter_total(counted),
        interval_s=rt.settings.console_sample_interval_s,
    )


def _throughput_unit(fleet: Fleet) -> str:
    return "events stored" if "appender" in fleet.roles else "command requests"


async def stylesheet(request: Request) -> Response:
    return Response(STYLE.encode(), content_type=CSS, headers={"Cache-Control": "max-age=3600"})
