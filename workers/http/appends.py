"""``POST /v1/appends``: one event to each of several aggregates, stored all or none.

The edge only reads the body, names the door's principal and maps the outcome: the request is
parsed by ``workers.roles.command.multi_requests`` and answered by the command side's
``handle_many`` (``workers.roles.command.multi_mode``); ``answer_of_all`` gives the status.
"""

from __future__ import annotations

from workers.http import declared
from workers.http.bodies import json_body
from workers.http.edge.request import Request
from workers.http.edge.responses import Response, json_response
from workers.http.edge.routes import Api
from workers.roles.command.multi_requests import parse_multi
from workers.roles.outcomes import Refused
from workers.runtime.answers import error
from workers.runtime.fleet import Fleet
from workers.runtime.multi_answers import answer_of_all


def register_multi_append(fleet: Fleet, api: Api) -> None:
    """The route, on a process running the commands role."""
    commands, settings = fleet.runtime.commands, fleet.runtime.settings
    limit, within_s = settings.max_body_bytes, settings.body_timeout_s
    max_items = settings.multi_append_max_items
    draining = json_response(
        error(503, "shutting_down", "this worker is draining; retry on another.")
    )
    door = fleet.door

    async def append_many(request: Request) -> Response:
        if fleet.draining:
            return draining
        with fleet.serving():
            body = await json_body(request, limit, within_s)
            multi = parse_multi(
                body,
                max_bytes=limit,
                max_items=max_items,
                actor=door.actor(request),  # from the token only, never from the body
            )
            outcome = await commands.handle_many(multi)
            if isinstance(outcome, Refused) and outcome.code == "forbidden":
                door.count_forbidden(str(outcome.details.get("reason", "domain_rule")))
            return json_response(answer_of_all(outcome))  # a 429's Retry-After too

    api.bind(declared.MULTI_APPEND, append_many)
