"""The process managers over HTTP: the managers, their instances, their pending deadlines, and
the retry of a stuck instance; each route declared once (``workers.http.declared``).

Behind the door like every route. Reading takes the viewer or the operator role
(``EVENTFLEET_AUTH_VIEWER_ROLE``, ``EVENTFLEET_AUTH_OPERATOR_ROLE``), a retry the operator role,
recorded as the principal its token names. With the door open (``EVENTFLEET_AUTH=none``) anyone
reads, and a retry is allowed only where operator actions are on
(``EVENTFLEET_CONSOLE_ACTIONS=true``), by the operator the body names, as for an erasure.
"""

from __future__ import annotations

from snapshot_rules.process import NAME_RE
from topics.errors import Forbidden, InvalidInput
from workers.http import declared
from workers.http.bodies import json_body
from workers.http.declared import DeadlinesQuery, InstancesQuery
from workers.http.edge.request import Request
from workers.http.edge.responses import Response, json_response
from workers.http.edge.routes import Api
from workers.http.operators import Action, operator_body, operator_of
from workers.roles.process.desk import ProcessDesk, deadline_dict, instance_dict
from workers.runtime.answers import Answer
from workers.runtime.fleet import Fleet

RETRY = Action(
    to="retry an instance",
    acts="retries",
    off="retrying an instance is an operator action, off on this process: set "
    "EVENTFLEET_CONSOLE_ACTIONS=true on the process operators use, or run `eventfleet pm retry`.",
)


def register_processes(fleet: Fleet, api: Api) -> None:
    """Serve the process managers' routes, when the fleet enables any."""
    rt = fleet.runtime
    if not rt.processes:
        return
    desk = rt.process_desk
    settings = rt.settings
    readers = (settings.auth_viewer_role, settings.auth_operator_role)

    def refusal(request: Request, *roles: str) -> Response | None:
        """403 unless the caller holds one of ``roles`` (the door open: anyone)."""
        actor = fleet.door.actor(request)
        if actor is None or actor.has(*roles):
            return None
        e = Forbidden("role_required", f"{actor.principal} needs the role {' or '.join(roles)}.")
        return json_response(fleet.door.refused(e))

    async def processes(request: Request) -> Response:
        if (refused := refusal(request, *readers)) is not None:
            return refused
        found = await desk.overview()
        return json_response(Answer(200, {"processes": [s.as_dict() for s in found]}))

    async def instances(request: Request, query: InstancesQuery) -> Response:
        if (refused := refusal(request, *readers)) is not None:
            return refused
        name = process_of(request)
        page, following = await desk.page(
            name, status=query.status, after=query.after, limit=query.limit
        )
        body = {
            "instances": [instance_dict(i) for i in page],
            "more": following is not None,
            "next_after": following,
        }
        return json_response(Answer(200, body))

    async def instance(request: Request) -> Response:
        if (refused := refusal(request, *readers)) is not None:
            return refused
        found = await desk.show(process_of(request), request.params["key"])
        return json_response(Answer(200, instance_dict(found)))

    async def deadlines(request: Request, query: DeadlinesQuery) -> Response:
        if (refused := refusal(request, *readers)) is not None:
            return refused
        pending = await desk.deadlines(process_of(request), limit=query.limit)
        listed = [{"key": key, **deadline_dict(d)} for key, d in pending]
        return json_response(Answer(200, {"deadlines": listed}))

    async def retry(request: Request) -> Response:
        return await retry_answer(fleet, desk, request)

    api.bind(declared.PROCESSES, processes)
    api.bind(declared.PROCESS_INSTANCES, instances)
    api.bind(declared.PROCESS_INSTANCE, instance)
    api.bind(declared.PROCESS_DEADLINES, deadlines)
    api.bind(declared.PROCESS_RETRY, retry)


async def retry_answer(fleet: Fleet, desk: ProcessDesk, request: Request) -> Response:
    """``POST …/retry``: the operator's retry of a stuck instance (202), or why not."""
    settings = fleet.runtime.settings
    name = process_of(request)
    raw = await json_body(request, settings.max_body_bytes, settings.body_timeout_s)
    body = operator_body(raw)
    who = operator_of(fleet, request, body, RETRY)
    if isinstance(who, Answer):
        return json_response(who)
    asked = await desk.retry(name, request.params["key"], operator=who, via="http")
    return json_response(Answer(202, instance_dict(asked)))


def process_of(request: Request) -> str:
    """The route's ``{process}``, of a process manager's name's form (404 if unknown: the desk)."""
    name = request.params["process"]
    if not NAME_RE.match(name):
        raise InvalidInput(f"process {name[:80]!r} must match {NAME_RE.pattern}.")
    return name
