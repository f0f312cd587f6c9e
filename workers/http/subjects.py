"""``POST /v1/subjects/{subject}/erase``: crypto-shred one subject's personal data (operators).

An operator action. With identity on (``EVENTFLEET_AUTH=jwt|proxy``) the caller must hold the
operator role (``EVENTFLEET_AUTH_OPERATOR_ROLE``) and is recorded as the principal its token
names, whatever the body says. With the door open (``EVENTFLEET_AUTH=none``) it is allowed only
on a process with operator actions on (``EVENTFLEET_CONSOLE_ACTIONS=true``), and the operator's name
is the one typed (``{"operator": "alice"}``), as in the console. ``operator_of`` is that decision,
in one place.
"""

from __future__ import annotations

import orjson

from topics.envelope import AGGREGATE_ID_RE
from topics.errors import Forbidden
from topics.jsonvalue import JsonObject
from workers.http.bodies import json_body
from workers.http.edge.request import Request
from workers.http.edge.responses import Response, json_response
from workers.http.edge.routes import Api
from workers.roles.personal import erase_subject
from workers.runtime.answers import Answer, erasure_answer, error
from workers.runtime.fleet import Fleet

OFF = (
    "erasing a subject is an operator action, off on this process: set "
    "EVENTFLEET_CONSOLE_ACTIONS=true on the process operators use, or run `eventfleet erase`."
)


def operator_of(fleet: Fleet, request: Request, body: JsonObject) -> str | Answer:
    """Who erases, or the refusal: the access decision of this route (see the module's note)."""
    actor = fleet.door.actor(request)
    if actor is not None:
        role = fleet.runtime.settings.auth_operator_role
        if not actor.has(role):
            refusal = Forbidden(
                "role_required", f"{actor.principal} needs the role {role} to erase a subject."
            )
            return fleet.door.refused(refusal)
        return actor.principal
    if not fleet.runtime.settings.console_actions:
        return error(403, "console_read_only", OFF, setting="EVENTFLEET_CONSOLE_ACTIONS")
    operator = body.get("operator", "http")
    if not isinstance(operator, str) or not 0 < len(operator) <= 100:
        return error(400, "bad_request", "operator must be a name of 1 to 100 characters.")
    return operator


def register_erase(fleet: Fleet, api: Api) -> None:
    rt = fleet.runtime

    @api.post(
        "/v1/subjects/{subject}/erase",
        tags=("operations",),
        summary="Erase one subject's personal data (crypto-shredding).",
        errors=("forbidden", "console_read_only", "bad_request", "unauthenticated"),
    )
    async def erase(request: Request) -> Response:
        subject = request.params["subject"]
        raw = await json_body(request, rt.settings.max_body_bytes, rt.settings.body_timeout_s)
        try:
            body = orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            message = 'the body must be empty or a JSON object like {"operator": "alice"}.'
            return json_response(error(400, "bad_request", message))
        who = operator_of(fleet, request, body)
        if isinstance(who, Answer):
            return json_response(who)
        if not AGGREGATE_ID_RE.match(subject):
            message = f"subject {subject!r} must match {AGGREGATE_ID_RE.pattern}."
            return json_response(error(400, "bad_request", message))
        outcome = await erase_subject(
            rt.shredder,
            rt.stores.actions,
            subject,
            operator=who,
            via="http",
            cache_ttl_s=rt.settings.key_cache_ttl_s,
            render=erasure_answer,
        )
        return json_response(erasure_answer(outcome))
